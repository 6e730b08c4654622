package remotecache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/plugins/content/local"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/ocilayout"
)

// ExampleWithCompression copies the gzip cache a real buildkitd wrote
// (testdata/buildkit-local-cache) with every layer converted to zstd: the
// layers get new digests and keep their diffIDs.
func ExampleWithCompression() {
	ctx := context.Background()
	src, err := ocilayout.Open("testdata/buildkit-local-cache", ocilayout.WithReadOnly())
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	desc, err := src.Resolve(ctx, "latest")
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "remotecache-example-")
	if err != nil {
		log.Fatal(err)
	}
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
	resp, err := exp.Finalize(ctx)
	if err != nil {
		log.Fatal(err)
	}

	before, err := remotecache.ReadManifest(ctx, src, desc)
	if err != nil {
		log.Fatal(err)
	}
	var mdesc ocispec.Descriptor
	if err := json.Unmarshal([]byte(resp[remotecache.ExporterResponseManifestDesc]), &mdesc); err != nil {
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
