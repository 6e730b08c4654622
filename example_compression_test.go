package remotecache_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/plugins/content/local"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/ocilayout"
)

// ExampleWithCompression copies the gzip cache a real buildkitd wrote
// (testdata/buildkit-local-cache) with every layer converted to zstd: the
// layers get new digests and keep their diffIDs.
func ExampleWithCompression() {
	ctx := context.Background()
	src, desc := exOpenLatest("testdata/buildkit-local-cache", ocilayout.WithReadOnly())
	defer src.Close()
	dir := exTempDir("remotecache-example-")
	defer os.RemoveAll(dir)
	dst, err := local.NewStore(filepath.Join(dir, "cache"))
	if err != nil {
		log.Fatal(err)
	}

	zstd := remotecache.CompressionConfig{Type: remotecache.CompressionZstd}
	exp, err := remotecache.NewExporter(dst, remotecache.WithCompression(zstd))
	if err != nil {
		log.Fatal(err)
	}
	if err := remotecache.Import(ctx, src, desc, exp); err != nil {
		log.Fatal(err)
	}
	mdesc := exFinalize(ctx, exp)

	before, err := remotecache.ReadManifest(ctx, src, desc)
	if err != nil {
		log.Fatal(err)
	}
	after, err := remotecache.ReadManifest(ctx, dst, mdesc)
	if err != nil {
		log.Fatal(err)
	}
	diffIDs := map[string]bool{}
	for _, l := range before.Layers {
		diffIDs[l.Annotations[remotecache.AnnotationUncompressed]] = true
	}
	for i, l := range after.Layers {
		fmt.Println(before.Layers[i].MediaType, "->", l.MediaType, diffIDs[l.Annotations[remotecache.AnnotationUncompressed]])
	}
	// Output:
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
	// application/vnd.oci.image.layer.v1.tar+gzip -> application/vnd.oci.image.layer.v1.tar+zstd true
}
