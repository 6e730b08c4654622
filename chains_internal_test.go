package remotecache

import (
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Result deduplication is not visible through Marshal, which writes only
// the best result, so it is checked on the record itself.
func TestAddDoesNotDuplicateResults(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res := func(blobs ...string) Result {
		var ds []ocispec.Descriptor
		for _, b := range blobs {
			ds = append(ds, ocispec.Descriptor{Digest: digest.FromString(b)})
		}
		return Result{CreatedAt: at, Remote: &Remote{Descriptors: ds}}
	}
	c := NewCacheChains()
	r, _, err := c.Add(digest.FromString("r"), nil, []Result{res("a", "b"), res("a", "b")})
	if err != nil {
		t.Fatal(err)
	}
	// The same instant in another zone is the same CreatedAt.
	again := res("a", "b")
	again.CreatedAt = at.In(time.FixedZone("x", 3600))
	if _, _, err := c.Add(digest.FromString("r"), nil, []Result{again}); err != nil {
		t.Fatal(err)
	}
	if n := len(r.(*record).results); n != 1 {
		t.Fatalf("%d results after adding one result three times, want 1", n)
	}
	// Same time, same number of blobs, other blobs: a different result
	// (BuildKit's addResult takes it for a duplicate).
	if _, _, err := c.Add(digest.FromString("r"), nil, []Result{res("a", "c")}); err != nil {
		t.Fatal(err)
	}
	if n := len(r.(*record).results); n != 2 {
		t.Fatalf("%d results, want 2", n)
	}
}
