package objstoretest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/objstore"
)

// prune is the default prune: no dry run, the default grace period.
var prune = objstore.PruneOptions{GracePeriod: objstore.DefaultGracePeriod}

// Prune removes the blobs that no config under the manifests prefix names
// and that are older than the grace period; a dry run only says so; what
// is left imports whole under every name.
func testPrune(t *testing.T, s Suite) {
	e := s.Open(t)
	ctx := context.Background()
	ga, gb, gc := Graph(21, 30, 0), Graph(22, 30, 0), Graph(23, 10, 0)
	a, b := Settings{Names: []string{"a"}}, Settings{Names: []string{"b"}}
	Export(t, e.Store(t, a), ga)
	// b's first cache is replaced by a smaller one: its blobs that the
	// second does not name are orphans.
	Export(t, e.Store(t, b), gb)
	orphansB := ConfigBlobs(t, e.Object(t, "manifests/b"))
	Export(t, e.Store(t, b), gc)
	named := map[digest.Digest]bool{}
	for _, name := range []string{"a", "b"} {
		for _, d := range ConfigBlobs(t, e.Object(t, "manifests/"+name)) {
			named[d] = true
		}
	}
	var orphans []digest.Digest
	for _, d := range orphansB {
		if !named[d] {
			orphans = append(orphans, d)
		}
	}
	if len(orphans) < 4 {
		t.Fatalf("only %d orphans", len(orphans))
	}
	// Every blob is old but one orphan; a non-digest object under blobs/
	// is not a blob.
	young := orphans[0]
	stray := "blobs/README"
	e.Put(t, stray, "not a blob")
	for _, k := range e.Keys(t) {
		if strings.HasPrefix(k, "blobs/") && k != "blobs/"+young.String() {
			e.Age(t, k, 2*time.Hour)
		}
	}

	store := e.Store(t, a)
	before := e.Keys(t)
	p := e.Proxy()
	p.Reset()
	dry, err := store.Prune(ctx, objstore.PruneOptions{DryRun: true, GracePeriod: objstore.DefaultGracePeriod})
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Writes(); n != 0 || !slices.Equal(e.Keys(t), before) {
		t.Fatalf("dry run made %d writes", n)
	}
	var want []digest.Digest
	var wantBytes int64
	for _, d := range orphans[1:] {
		want = append(want, d)
		wantBytes += int64(len(BlobBytes(t, d, gb)))
	}
	slices.Sort(want)
	check := func(what string, rep objstore.PruneReport) {
		t.Helper()
		var got []digest.Digest
		for _, b := range rep.Blobs {
			got = append(got, b.Digest)
		}
		if !slices.Equal(got, want) || rep.Bytes != wantBytes || rep.Kept != len(named)+1 {
			t.Errorf("%s: removed %v (%d bytes), kept %d; want %v (%d bytes), kept %d", what, got, rep.Bytes, rep.Kept, want, wantBytes, len(named)+1)
		}
	}
	check("dry run", dry)

	rep, err := store.Prune(ctx, prune)
	if err != nil {
		t.Fatal(err)
	}
	check("prune", rep)
	if n := p.Count("DELETE"); n != len(want) {
		t.Errorf("%d deletes, want %d", n, len(want))
	}
	keys := e.Keys(t)
	for _, d := range want {
		if slices.Contains(keys, "blobs/"+d.String()) {
			t.Errorf("orphan %s not removed", d)
		}
	}
	for _, k := range []string{"blobs/" + young.String(), stray} {
		if !slices.Contains(keys, k) {
			t.Errorf("%s removed", k)
		}
	}
	Verify(t, e.Store(t, a))
	Verify(t, e.Store(t, b))
	// Nothing more to do.
	if rep, err := store.Prune(ctx, prune); err != nil || len(rep.Blobs) != 0 {
		t.Errorf("second prune: %v, %v", rep, err)
	}
}

// A config Prune cannot parse fails it before anything is removed: it
// might name any blob.
func testPruneUnreadableConfig(t *testing.T, s Suite) {
	e := s.Open(t)
	Export(t, e.Store(t, Settings{}), Graph(24, 10, 0))
	key := "manifests/garbage"
	e.Put(t, key, "{not json")
	for _, k := range e.Keys(t) {
		e.Age(t, k, 2*time.Hour)
	}
	p := e.Proxy()
	p.Reset()
	_, err := e.Store(t, Settings{Names: []string{"other"}}).Prune(context.Background(), prune)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), key) {
		t.Errorf("Prune = %v, want invalid argument naming %s", err, key)
	}
	if n := p.Count("DELETE"); n != 0 {
		t.Errorf("%d deletes", n)
	}
}

// Prune beside exports in progress loses nothing: every export's blobs are
// younger than the grace period until its config names them, and blobs a
// config names are kept whatever their age.
func testPruneWithConcurrentExport(t *testing.T, s Suite) {
	e := s.Open(t)
	ctx := context.Background()
	p := e.Proxy()
	// Blob uploads are slowed down, so that prunes run while an export
	// has written some blobs and not yet its config.
	p.SetFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if slices.Contains(p.cfg.Uploads, p.cfg.Op(r)) && p.cfg.IsBlob(p.cfg.Key(r)) {
			time.Sleep(5 * time.Millisecond)
		}
		return false
	})
	minute := objstore.PruneOptions{GracePeriod: time.Minute}
	const rounds = 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var pruned, prunes int
	var pruneErr error
	wg.Go(func() {
		store := e.Store(t, Settings{})
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := store.Prune(ctx, minute)
			if err != nil {
				pruneErr = err
				return
			}
			prunes++
			pruned += len(rep.Blobs)
		}
	})
	for i := range rounds {
		// Each round replaces the cache with another graph, then ages
		// every blob: the previous round's orphans become prunable, and
		// the current config's blobs are old but named.
		store := e.Store(t, Settings{})
		Export(t, store, Graph(int64(30+i), 25, 300))
		Verify(t, store)
		for _, k := range e.Keys(t) {
			if strings.HasPrefix(k, "blobs/") {
				e.Age(t, k, time.Hour)
			}
		}
	}
	close(stop)
	wg.Wait()
	if pruneErr != nil {
		t.Fatal(pruneErr)
	}
	p.SetFault(nil)
	Verify(t, e.Store(t, Settings{}))
	t.Logf("%d prunes beside the exports removed %d blobs", prunes, pruned)
	// What they left of the earlier rounds' blobs goes now.
	rep, err := e.Store(t, Settings{}).Prune(ctx, minute)
	if err != nil {
		t.Fatal(err)
	}
	Verify(t, e.Store(t, Settings{}))
	if prunes == 0 || pruned+len(rep.Blobs) == 0 {
		t.Errorf("%d prunes removed %d blobs, a last one %d; want prunes and blobs removed", prunes, pruned, len(rep.Blobs))
	}
}

// A store opened read-only reads everything and sends no request that
// writes: no upload, no refresh of old blobs, no delete.
func testReadOnlyWritesNothing(t *testing.T, s Suite) {
	e := s.Open(t)
	ctx := context.Background()
	g := Graph(25, 30, 0)
	Export(t, e.Store(t, Settings{}), g)
	Export(t, e.Store(t, Settings{Names: []string{"gone"}}), Graph(26, 5, 0))
	e.Delete(t, "manifests/gone")
	for _, k := range e.Keys(t) {
		e.Age(t, k, 48*time.Hour)
	}

	p := e.Proxy()
	p.Reset()
	ro := e.Store(t, Settings{ReadOnly: true})
	if again := Reimport(t, ro); len(again) == 0 {
		t.Fatal("nothing imported")
	}
	Verify(t, ro)
	for _, d := range g.BlobOrder {
		if _, err := ro.Info(ctx, d); err != nil && !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	if _, err := ro.Writer(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Writer = %v, want failed precondition", err)
	}
	if _, err := ro.Prune(ctx, prune); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Prune = %v, want failed precondition", err)
	}
	rep, err := ro.Prune(ctx, objstore.PruneOptions{DryRun: true, GracePeriod: objstore.DefaultGracePeriod})
	if err != nil || len(rep.Blobs) == 0 {
		t.Errorf("dry run = %+v, %v; want the orphans", rep, err)
	}
	if _, err := TryExport(ctx, ro, g); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("export = %v, want failed precondition", err)
	}
	if n := p.Writes(); n != 0 {
		t.Errorf("%d write requests (%s)", n, p.Summary())
	}
	if p.Count("GET") == 0 || p.Count("HEAD") == 0 || p.Count("LIST") == 0 {
		t.Errorf("the reads did not go through the proxy (%s)", p.Summary())
	}
}
