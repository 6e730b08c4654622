package azbtest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachegen"
)

// upload writes a blob straight to Azurite.
func (e *env) upload(t testing.TB, name, body string) {
	t.Helper()
	if _, err := e.admin.NewBlockBlobClient(name).UploadBuffer(context.Background(), []byte(body), &blockblob.UploadBufferOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Prune removes the blobs that no config under the manifests directory
// names and that are older than the grace period; a dry run only says so;
// what is left imports whole under every name.
func TestPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ga, gb, gc := graph(21, 30, 0), graph(22, 30, 0), graph(23, 10, 0)
	export(t, e.store(t, azbstore.WithNames("a")), ga)
	// b's first cache is replaced by a smaller one: its blobs that the
	// second does not name are orphans.
	export(t, e.store(t, azbstore.WithNames("b")), gb)
	orphansB := configBlobs(t, e.blob(t, "manifests/b"))
	export(t, e.store(t, azbstore.WithNames("b")), gc)
	named := map[digest.Digest]bool{}
	for _, name := range []string{"a", "b"} {
		for _, d := range configBlobs(t, e.blob(t, "manifests/"+name)) {
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
	// Every blob is old but one orphan; a non-digest blob under blobs/
	// is not a cache blob.
	young := orphans[0]
	stray := "blobs/README"
	e.upload(t, stray, "not a blob")
	for _, n := range e.names(t) {
		if strings.HasPrefix(n, "blobs/") && n != "blobs/"+young.String() {
			e.proxy.age(n, 2*time.Hour)
		}
	}

	store := e.store(t, azbstore.WithNames("a"))
	before := e.names(t)
	e.proxy.reset()
	dry, err := store.Prune(ctx, azbstore.WithDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if n := e.proxy.writes(); n != 0 || !slices.Equal(e.names(t), before) {
		t.Fatalf("dry run made %d writes", n)
	}
	var want []digest.Digest
	var wantBytes int64
	for _, d := range orphans[1:] {
		want = append(want, d)
		wantBytes += int64(len(blobBytes(t, d, gb)))
	}
	slices.Sort(want)
	check := func(what string, rep azbstore.PruneReport) {
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

	rep, err := store.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("prune", rep)
	if n := e.proxy.count("DELETE"); n != len(want) {
		t.Errorf("%d deletes, want %d", n, len(want))
	}
	for _, d := range want {
		if slices.Contains(e.names(t), "blobs/"+d.String()) {
			t.Errorf("orphan %s not removed", d)
		}
	}
	for _, n := range []string{"blobs/" + young.String(), stray} {
		if !slices.Contains(e.names(t), n) {
			t.Errorf("%s removed", n)
		}
	}
	for _, name := range []string{"a", "b"} {
		verify(t, e.store(t, azbstore.WithNames(name)))
	}
	// Nothing more to do.
	if rep, err := store.Prune(ctx); err != nil || len(rep.Blobs) != 0 {
		t.Errorf("second prune: %v, %v", rep, err)
	}
}

// blobBytes returns the bytes of blob d of one of the graphs.
func blobBytes(t testing.TB, d digest.Digest, gs ...*cachegen.Graph) []byte {
	t.Helper()
	for _, g := range gs {
		if b, ok := g.Blobs[d]; ok {
			return b.Bytes()
		}
	}
	t.Fatalf("no blob %s", d)
	return nil
}

// Prune deletes a blob only if it is the one it listed: one that an
// export refreshed after the listing (here, just before the delete) is
// kept.
func TestPruneKeepsBlobsChangedSinceListed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	export(t, e.store(t, azbstore.WithNames("gone")), graph(27, 10, 0))
	if _, err := e.admin.NewBlobClient("manifests/gone").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var orphans []string
	for _, n := range e.names(t) {
		e.proxy.age(n, 2*time.Hour)
		orphans = append(orphans, n)
	}
	// Before the first delete reaches Azurite, an export refreshes the
	// blob it is for.
	var once sync.Once
	var refreshed string
	refresher := e.store(t, azbstore.WithTouchRefresh(time.Hour))
	e.proxy.setFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if opOf(r) == "DELETE" {
			once.Do(func() {
				refreshed = blobName(r)
				d := digest.Digest(strings.TrimPrefix(refreshed, "blobs/"))
				if _, err := refresher.Info(r.Context(), d); err != nil {
					t.Errorf("refreshing %s: %v", d, err)
				}
			})
		}
		return false
	})
	rep, err := e.store(t).Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != len(orphans)-1 || rep.Kept != 1 {
		t.Errorf("removed %d, kept %d; want %d and 1 (the blob refreshed)", len(rep.Blobs), rep.Kept, len(orphans)-1)
	}
	if names := e.names(t); !slices.Equal(names, []string{refreshed}) {
		t.Errorf("blobs left %q, want the refreshed %s", names, refreshed)
	}
}

// A config Prune cannot parse fails it before anything is removed: it
// might name any blob.
func TestPruneUnreadableConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	export(t, e.store(t), graph(24, 10, 0))
	name := "manifests/garbage"
	e.upload(t, name, "{not json")
	for _, n := range e.names(t) {
		e.proxy.age(n, 2*time.Hour)
	}
	e.proxy.reset()
	_, err := e.store(t, azbstore.WithNames("other")).Prune(ctx)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), name) {
		t.Errorf("Prune = %v, want invalid argument naming %s", err, name)
	}
	if n := e.proxy.count("DELETE"); n != 0 {
		t.Errorf("%d deletes", n)
	}
}

// Prune beside exports in progress loses nothing: every export's blobs are
// younger than the grace period until its config names them, and blobs a
// config names are kept whatever their age.
func TestPruneWithConcurrentExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// Blob uploads are slowed down, so that prunes run while an export
	// has written some blobs and not yet its config.
	e.proxy.setFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if opOf(r) == "PUT" && isBlob(r) {
			time.Sleep(5 * time.Millisecond)
		}
		return false
	})
	const rounds = 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var pruned, prunes int
	var pruneErr error
	wg.Go(func() {
		store := e.store(t)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := store.Prune(ctx, azbstore.WithGracePeriod(time.Minute))
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
		store := e.store(t)
		g := graph(int64(30+i), 25, 300)
		export(t, store, g)
		verify(t, store)
		for _, n := range e.names(t) {
			if strings.HasPrefix(n, "blobs/") {
				e.proxy.age(n, time.Hour)
			}
		}
	}
	close(stop)
	wg.Wait()
	if pruneErr != nil {
		t.Fatal(pruneErr)
	}
	e.proxy.setFault(nil)
	verify(t, e.store(t))
	t.Logf("%d prunes beside the exports removed %d blobs", prunes, pruned)
	// What they left of the earlier rounds' blobs goes now.
	rep, err := e.store(t).Prune(ctx, azbstore.WithGracePeriod(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	verify(t, e.store(t))
	if prunes == 0 || pruned+len(rep.Blobs) == 0 {
		t.Errorf("%d prunes removed %d blobs, a last one %d; want prunes and blobs removed", prunes, pruned, len(rep.Blobs))
	}
}

// A store opened read-only reads everything and sends no request that
// writes: no upload, no refresh of old blobs, no delete, no container.
func TestReadOnlyWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	g := graph(25, 30, 0)
	export(t, e.store(t), g)
	orphan := graph(26, 5, 0)
	export(t, e.store(t, azbstore.WithNames("gone")), orphan)
	if _, err := e.admin.NewBlobClient("manifests/gone").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range e.names(t) {
		e.proxy.age(n, 48*time.Hour)
	}

	e.proxy.reset()
	ro := e.store(t, azbstore.WithReadOnly())
	if again := reimport(t, ro); len(again) == 0 {
		t.Fatal("nothing imported")
	}
	verify(t, ro)
	for _, d := range g.BlobOrder {
		if _, err := ro.Info(ctx, d); err != nil && !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	if _, err := ro.Writer(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Writer = %v, want failed precondition", err)
	}
	if _, err := ro.Prune(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Prune = %v, want failed precondition", err)
	}
	rep, err := ro.Prune(ctx, azbstore.WithDryRun())
	if err != nil || len(rep.Blobs) == 0 {
		t.Errorf("dry run = %+v, %v; want the orphans", rep, err)
	}
	if _, err := tryExport(ctx, ro, g); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("export = %v, want failed precondition", err)
	}
	// In a container that does not exist: not found, and not made.
	m := newEnv(t, true)
	if _, err := m.store(t, azbstore.WithReadOnly()).Resolve(ctx); !errdefs.IsNotFound(err) {
		t.Errorf("Resolve in a missing container = %v", err)
	}
	for _, p := range []*proxy{e.proxy, m.proxy} {
		if n := p.writes(); n != 0 {
			t.Errorf("%d write requests (%s)", n, p.summary())
		}
	}
	if e.proxy.count("GET") == 0 || e.proxy.count("HEAD") == 0 || e.proxy.count("LIST") == 0 {
		t.Errorf("the reads did not go through the proxy (%s)", e.proxy.summary())
	}
}
