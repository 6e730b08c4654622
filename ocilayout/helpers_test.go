package ocilayout_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/ocilayout"
)

// openWriter opens a writer of ref in s.
func openWriter(t *testing.T, s *ocilayout.Store, ref string, opts ...content.WriterOpt) content.Writer {
	t.Helper()
	w, err := s.Writer(context.Background(), append([]content.WriterOpt{content.WithRef(ref)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// writeString opens a writer of ref in s and writes data.
func writeString(t *testing.T, s *ocilayout.Store, ref, data string, opts ...content.WriterOpt) content.Writer {
	t.Helper()
	w := openWriter(t, s, ref, opts...)
	if _, err := w.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	return w
}

// writeUntagged writes a blob through s and tags nothing: an export in
// progress, between its blob writes and its Tag.
func writeUntagged(t *testing.T, s *ocilayout.Store, what string) ocispec.Descriptor {
	t.Helper()
	dt := []byte(what)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	if err := content.WriteBlob(context.Background(), s, what, bytes.NewReader(dt), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

// pruneAtOnce runs a Prune through each of two Stores of dir at once. It
// returns the error of the first to return, then, once that one's Store
// is closed, the other's.
func pruneAtOnce(t *testing.T, ctx context.Context, dir string) (first, second error) {
	t.Helper()
	stores := []*ocilayout.Store{openT(t, dir), openT(t, dir)}
	type result struct {
		i   int
		err error
	}
	results := make(chan result, 2)
	for i, s := range stores {
		go func() {
			_, err := s.Prune(ctx)
			results <- result{i, err}
		}()
	}
	var r result
	select {
	case r = <-results:
	case <-time.After(cachetest.HangGuard): // beyond the tests' 30s
		t.Fatal("neither Prune returned: they wait for each other")
	}
	stores[r.i].Close()
	return r.err, (<-results).err
}
