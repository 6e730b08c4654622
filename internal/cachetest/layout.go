package cachetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/ocilayout"
)

// But for NewLayout, the helpers of this file read an OCI image layout
// directory with nothing but the file system and encoding/json, so that
// what they find does not depend on the code under test.

// NewLayout opens a new OCI layout store in a temporary directory of t and
// returns the directory and the store, which is closed when the test ends
// (closing it sooner is fine).
func NewLayout(t testing.TB) (string, *ocilayout.Store) {
	t.Helper()
	dir := t.TempDir()
	s, err := ocilayout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return dir, s
}

// LayoutIndex returns the index.json of the layout in dir.
func LayoutIndex(t testing.TB, dir string) ocispec.Index {
	t.Helper()
	dt, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		t.Fatalf("%s: index.json: %v", dir, err)
	}
	return idx
}

// LayoutBlobPath is where the layout in dir keeps the blob d.
func LayoutBlobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// LayoutBlob reads the blob d of the layout in dir and checks that its
// bytes have that digest.
func LayoutBlob(t testing.TB, dir string, d digest.Digest) []byte {
	t.Helper()
	dt, err := os.ReadFile(LayoutBlobPath(dir, d))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(dt); got != d {
		t.Fatalf("blob %s of %s has the bytes of %s", d, dir, got)
	}
	return dt
}

// LayoutTagged returns the descriptor that the index.json of the layout in
// dir gives the tag, and the config descriptor of that manifest.
func LayoutTagged(t testing.TB, dir, tag string) (manifest, config ocispec.Descriptor) {
	t.Helper()
	for _, m := range LayoutIndex(t, dir).Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == tag {
			manifest = m
		}
	}
	if manifest.Digest == "" {
		t.Fatalf("%s: no tag %q in index.json", dir, tag)
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(LayoutBlob(t, dir, manifest.Digest), &mf); err != nil {
		t.Fatal(err)
	}
	return manifest, mf.Config
}
