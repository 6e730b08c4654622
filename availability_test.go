package remotecache_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// tcSlowInfo is a store whose Info takes a while, as a registry's HEAD
// does, and which counts the calls in flight.
type tcSlowInfo struct {
	content.Store
	calls cachetest.Counter

	mu                sync.Mutex
	inFlight, maxSeen int
}

func (s *tcSlowInfo) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	s.calls.Add(dgst)
	s.mu.Lock()
	s.inFlight++
	s.maxSeen = max(s.maxSeen, s.inFlight)
	s.mu.Unlock()
	// Long enough that calls one after the other never overlap; the
	// test counts calls in flight, it does not time them.
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	return s.Store.Info(ctx, dgst)
}

// Marshal checks the blobs concurrently, a bounded number at a time, each
// once, and drops the results of those not found.
func TestMarshalChecksBlobsConcurrently(t *testing.T) {
	store := tcStore(t)
	src := &tcSlowInfo{Store: store}
	c := remotecache.NewCacheChains()
	const n = 40
	var blobs []ocispec.Descriptor
	for i := range n {
		b := tcBlob(t, store, []byte(fmt.Sprintf("blob %d", i)))
		blobs = append(blobs, b)
		// Two records per blob: each blob is asked about once.
		tcAdd(t, c, tcDigest(fmt.Sprintf("a%d", i)), nil, tcResult(src, 1, b))
		tcAdd(t, c, tcDigest(fmt.Sprintf("b%d", i)), nil, tcResult(src, 1, b))
	}
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: tcDigest("missing"), Size: 7}
	tcAdd(t, c, tcDigest("gone"), nil, tcResult(src, 1, blobs[0], missing))
	cfg, _ := tcMarshal(t, c)
	if rec := tcRecord(t, cfg, tcDigest("gone")); len(rec.Results) != 0 {
		t.Errorf("result with a missing blob kept")
	}
	if len(cfg.Layers) != n {
		t.Errorf("%d layers, want %d", len(cfg.Layers), n)
	}
	total, per := src.calls.All()
	if total != n+1 {
		t.Errorf("%d Info calls, want %d (one per distinct blob): %v", total, n+1, per)
	}
	if src.maxSeen < 2 || src.maxSeen > 16 {
		t.Errorf("at most %d Info calls in flight, want between 2 and 16", src.maxSeen)
	}
	t.Logf("%d Info calls, at most %d at a time", total, src.maxSeen)
}
