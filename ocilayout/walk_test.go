package ocilayout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
)

// A cache of more than 10,000 layers (this library writes such caches: a
// 100,000-deep chain works) can be tagged and pruned. containerd's
// images.Walk refuses a walk of more than 10,000 references.
func TestManyLayers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	const n = 10_001
	// The layers go straight into blobs/sha256, as another tool might
	// write them: through the store every blob is synced, and 10,000
	// syncs take long.
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		t.Fatal(err)
	}
	layers := make([]ocispec.Descriptor, n)
	for i := range layers {
		dt := []byte("layer " + strconv.Itoa(i))
		d := digest.FromBytes(dt)
		if err := os.WriteFile(filepath.Join(blobDir, d.Encoded()), dt, 0o644); err != nil {
			t.Fatal(err)
		}
		layers[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(dt))}
	}
	config := writeUntagged(t, s, `{"layers":[],"records":[]}`)
	config.MediaType = remotecache.CacheConfigMediaTypeV0
	dt, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    layers,
	})
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	if err := content.WriteBlob(ctx, s, "manifest", bytes.NewReader(dt), desc); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "many", desc); err != nil {
		t.Fatalf("Tag of a manifest of %d layers: %v", n, err)
	}
	stray := writeUntagged(t, s, "reached by no tag")
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatalf("Prune with a tag of %d layers: %v", n, err)
	}
	if len(rep.Blobs) != 1 || rep.Blobs[0].Digest != stray.Digest {
		t.Fatalf("Prune removed %d blobs, want only %s", len(rep.Blobs), stray.Digest)
	}
	left := 0
	if err := s.Walk(ctx, func(content.Info) error { left++; return nil }); err != nil {
		t.Fatal(err)
	}
	if left != n+2 {
		t.Fatalf("%d blobs left, want the %d layers, the config and the manifest", left, n)
	}
}
