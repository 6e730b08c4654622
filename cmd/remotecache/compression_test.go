package main

import (
	"path/filepath"
	"testing"

	"github.com/buildcache/remotecache/internal/cachetest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copy --compression converts every layer of BuildKit's gzip cache, a
// second copy writes nothing new, a copy back gives zstd's layers as they
// are, and --force-compression at another level recompresses them.
func TestCopyCompression(t *testing.T) {
	src := "oci:" + cachetest.Fixture(t)
	blobs := cachetest.FixtureBlobs + 2

	zst := "oci:" + filepath.Join(t.TempDir(), "zstd")
	first := copyJSON(t, "copy", "-q", src, zst, "--compression", "zstd")
	if first.Blobs != blobs || first.Written != blobs || first.Manifest.Digest == cachetest.FixtureManifest {
		t.Fatalf("copy to zstd: %+v", first)
	}
	rep := inspectJSON(t, zst)
	if rep.Counts.Blobs != cachetest.FixtureBlobs || rep.Counts.Missing != 0 || len(rep.Problems) != 0 {
		t.Fatalf("zstd copy: counts %+v, problems %v", rep.Counts, rep.Problems)
	}
	for _, b := range rep.Blobs {
		if b.MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Errorf("zstd copy: blob %s is %s", b.Digest, b.MediaType)
		}
	}
	ok(t, "verify", zst)

	again := copyJSON(t, "copy", "-q", src, zst, "--compression=zstd")
	if again.Written != 0 || again.Skipped != blobs || again.Manifest.Digest != first.Manifest.Digest {
		t.Errorf("second copy to zstd: %+v, want nothing written and manifest %s", again, first.Manifest.Digest)
	}

	// zstd into zstd without force: the layers are copied as they are.
	same := copyJSON(t, "copy", "-q", zst, "oci:"+filepath.Join(t.TempDir(), "same"), "--compression", "zstd")
	if same.Manifest.Digest != first.Manifest.Digest {
		t.Errorf("zstd to zstd: manifest %s, want %s", same.Manifest.Digest, first.Manifest.Digest)
	}
	// With force and another level, every layer is new.
	forced := "oci:" + filepath.Join(t.TempDir(), "forced")
	f := copyJSON(t, "copy", "-q", zst, forced, "--compression", "zstd", "--compression-level", "19", "--force-compression")
	if f.Manifest.Digest == first.Manifest.Digest {
		t.Error("forced zstd -19: the same manifest as zstd 3")
	}
	for _, b := range inspectJSON(t, forced).Blobs {
		for _, o := range rep.Blobs {
			if b.Digest == o.Digest {
				t.Errorf("forced zstd -19: blob %s unchanged", b.Digest)
			}
		}
	}

	// merge takes the flags too: back to uncompressed.
	tar := "oci:" + filepath.Join(t.TempDir(), "tar")
	copyJSON(t, "merge", "-q", zst, src, tar, "--compression", "uncompressed")
	for _, b := range inspectJSON(t, tar).Blobs {
		if b.MediaType != ocispec.MediaTypeImageLayer {
			t.Errorf("uncompressed merge: blob %s is %s", b.Digest, b.MediaType)
		}
	}
}
