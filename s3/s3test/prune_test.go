package s3test

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachegen"
	s3store "github.com/buildcache/remotecache/s3"
)

// Prune removes the blobs that no config under the manifests prefix names
// and that are older than the grace period; a dry run only says so; what
// is left imports whole under every name.
func TestPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ga, gb, gc := graph(21, 30, 0), graph(22, 30, 0), graph(23, 10, 0)
	export(t, e.store(t, s3store.WithNames("a")), ga)
	// b's first cache is replaced by a smaller one: its blobs that the
	// second does not name are orphans.
	export(t, e.store(t, s3store.WithNames("b")), gb)
	orphansB := configBlobs(t, e.object(t, "manifests/b"))
	export(t, e.store(t, s3store.WithNames("b")), gc)
	named := map[digest.Digest]bool{}
	for _, name := range []string{"a", "b"} {
		for _, d := range configBlobs(t, e.object(t, "manifests/"+name)) {
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
	for _, k := range e.keys(t) {
		if strings.HasPrefix(k, "blobs/") && k != "blobs/"+young.String() {
			e.age(t, k, 2*time.Hour)
		}
	}
	stray := "blobs/README"
	if _, err := e.admin.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: &stray, Body: strings.NewReader("not a blob")}); err != nil {
		t.Fatal(err)
	}
	e.age(t, stray, 2*time.Hour)

	store := e.store(t, s3store.WithNames("a"))
	before := e.keys(t)
	e.proxy.reset()
	dry, err := store.Prune(ctx, s3store.WithDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if n := e.proxy.count("DELETE"); n != 0 || !slices.Equal(e.keys(t), before) {
		t.Fatalf("dry run deleted %d objects", n)
	}
	var want []digest.Digest
	var wantBytes int64
	for _, d := range orphans[1:] {
		want = append(want, d)
		wantBytes += int64(len(blobBytes(t, d, gb)))
	}
	slices.Sort(want)
	check := func(what string, rep s3store.PruneReport) {
		t.Helper()
		var got []digest.Digest
		for _, b := range rep.Blobs {
			got = append(got, b.Digest)
		}
		slices.Sort(got)
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
	for _, d := range want {
		if slices.Contains(e.keys(t), "blobs/"+d.String()) {
			t.Errorf("orphan %s not removed", d)
		}
	}
	for _, k := range []string{"blobs/" + young.String(), stray} {
		if !slices.Contains(e.keys(t), k) {
			t.Errorf("%s removed", k)
		}
	}
	for _, name := range []string{"a", "b"} {
		verify(t, e.store(t, s3store.WithNames(name)))
	}
	// Nothing more to do.
	if rep, err := store.Prune(ctx); err != nil || len(rep.Blobs) != 0 {
		t.Errorf("second prune: %v, %v", rep, err)
	}
}

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

// A config Prune cannot parse fails it before anything is removed: it
// might name any blob.
func TestPruneUnreadableConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	export(t, e.store(t), graph(24, 10, 0))
	key := "manifests/garbage"
	if _, err := e.admin.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: strings.NewReader("{not json")}); err != nil {
		t.Fatal(err)
	}
	for _, k := range e.keys(t) {
		e.age(t, k, 2*time.Hour)
	}
	e.proxy.reset()
	_, err := e.store(t, s3store.WithNames("other")).Prune(ctx)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), key) {
		t.Errorf("Prune = %v, want invalid argument naming %s", err, key)
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
		if r.Method == http.MethodPut && isBlob(r) {
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
			rep, err := store.Prune(ctx, s3store.WithGracePeriod(time.Minute))
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
		old := time.Now().Add(-time.Hour)
		for _, k := range e.keys(t) {
			if strings.HasPrefix(k, "blobs/") {
				// A prune may have removed it since the listing.
				os.Chtimes(e.path(k), old, old)
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
	t.Logf("%d prunes removed %d blobs", prunes, pruned)
	if prunes == 0 {
		t.Error("no prune ran")
	}
}

// A store opened read-only reads everything and sends no request that
// writes: no upload, no refresh of old blobs, no delete.
func TestReadOnlyWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	g := graph(25, 30, 0)
	export(t, e.store(t), g)
	orphan := graph(26, 5, 0)
	export(t, e.store(t, s3store.WithNames("gone")), orphan)
	key := "manifests/gone"
	if _, err := e.admin.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	for _, k := range e.keys(t) {
		e.age(t, k, 48*time.Hour)
	}

	e.proxy.reset()
	ro := e.store(t, s3store.WithReadOnly())
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
	rep, err := ro.Prune(ctx, s3store.WithDryRun())
	if err != nil || len(rep.Blobs) == 0 {
		t.Errorf("dry run = %+v, %v; want the orphans", rep, err)
	}
	if _, err := tryExport(ctx, ro, g); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("export = %v, want failed precondition", err)
	}
	if n := e.proxy.writes(); n != 0 {
		t.Errorf("%d write requests (PUT %d, COPY %d, POST %d, DELETE %d)", n,
			e.proxy.count("PUT"), e.proxy.count("COPY"), e.proxy.count("POST"), e.proxy.count("DELETE"))
	}
	if e.proxy.count("GET") == 0 || e.proxy.count("HEAD") == 0 {
		t.Error("the reads did not go through the proxy")
	}
}
