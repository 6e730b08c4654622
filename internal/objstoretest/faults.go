package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/cachegen"
)

// FaultPlan answers some requests with a fault, each fault once: its
// Handle is a Proxy fault function.
type FaultPlan struct {
	// Faults are the faults, in the order they are tried.
	Faults []Fault

	mu    sync.Mutex
	fired []string
}

// Fault is one fault of a plan: the first request Match takes gets Do.
type Fault struct {
	Name  string
	Match func(r *http.Request) bool
	// Do answers the request, or returns false to let the server answer
	// it.
	Do   func(w http.ResponseWriter, r *http.Request) bool
	done bool
}

// Handle is a Proxy fault function: the first fault not fired yet that
// matches r answers it.
func (p *FaultPlan) Handle(w http.ResponseWriter, r *http.Request, _ int) bool {
	p.mu.Lock()
	var f *Fault
	for i := range p.Faults {
		if !p.Faults[i].done && p.Faults[i].Match(r) {
			f = &p.Faults[i]
			f.done = true
			p.fired = append(p.fired, f.Name)
			break
		}
	}
	p.mu.Unlock()
	if f == nil {
		return false
	}
	return f.Do(w, r)
}

// CheckAllFired fails the test unless every fault has fired.
func (p *FaultPlan) CheckAllFired(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.fired) != len(p.Faults) {
		t.Errorf("faults fired: %q, want all %d", p.fired, len(p.Faults))
	}
}

// ResetUpload is a Fault's Do that resets the connection after n bytes
// of the request's body (ResetAfter).
func ResetUpload(n int64) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		ResetAfter(w, r, n)
		return true
	}
}

// BreakBlob exports g into store, in e, then deletes the first blob its
// config names from the server and has e's proxy answer every request
// about that blob with busy (the server's 503) from then on; the proxy's
// counts are reset. It returns the blob and its key.
func BreakBlob(t testing.TB, e Env, store content.Ingester, g *cachegen.Graph, busy func(w http.ResponseWriter, r *http.Request)) (digest.Digest, string) {
	t.Helper()
	Export(t, store, g)
	bad := ConfigBlobs(t, e.Object(t, "manifests/buildkit"))[0]
	key := "blobs/" + bad.String()
	e.Delete(t, key)
	p := e.Proxy()
	p.SetFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if p.cfg.Key(r) == key {
			busy(w, r)
			return true
		}
		return false
	})
	p.Reset()
	return bad, key
}

// CheckUnavailable fails t unless err, what op returned, is of class
// unavailable, not not found, and names blob d.
func CheckUnavailable(t testing.TB, op string, err error, d digest.Digest) {
	t.Helper()
	if !errdefs.IsUnavailable(err) || errdefs.IsNotFound(err) || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("%s = %v; want unavailable, not not found, naming %s", op, err, d)
	}
}

// CheckUnavailablePastRetries exports a graph into store, in e, with a
// blob that e's server answers busy for from then on (BreakBlob), past
// the store's retries: the export fails with a class that is not "not
// found", naming the blob; then sent, given the blob's key, checks the
// requests the store sent for it; and Info of the blob, and a copy out
// of the store (Marshal asks the source for every blob and must not take
// a 503 for a missing blob), fail alike. It returns Info's error.
func CheckUnavailablePastRetries(t testing.TB, e Env, store interface {
	Resolver
	content.InfoProvider
	content.Ingester
}, busy func(w http.ResponseWriter, r *http.Request), sent func(key string)) error {
	t.Helper()
	ctx := context.Background()
	g := Graph(13, 20, 0)
	bad, key := BreakBlob(t, e, store, g, busy)

	_, err := TryExport(ctx, store, g)
	CheckUnavailable(t, "export", err, bad)
	sent(key)
	_, infoErr := store.Info(ctx, bad)
	CheckUnavailable(t, "Info", infoErr, bad)
	CheckUnavailable(t, "copy out", CopyOut(t, store), bad)
	return infoErr
}

// CheckCancelledWrite writes dt, of desc, into store, and cancels the
// write when p sees the first request that cancelAt takes (p passes each
// such request on 100ms late): the write fails with context.Canceled. It
// leaves p with no fault.
func CheckCancelledWrite(t testing.TB, p *Proxy, store content.Ingester, dt []byte, desc ocispec.Descriptor, cancelAt func(r *http.Request) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	p.SetFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if cancelAt(r) {
			once.Do(cancel)
			time.Sleep(100 * time.Millisecond)
		}
		return false
	})
	err := content.WriteBlob(ctx, store, "cancelled", bytes.NewReader(dt), desc)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled WriteBlob = %v", err)
	}
	p.SetFault(nil)
}
