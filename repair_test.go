package remotecache_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/ocilayout"
)

// rpFixture opens a copy of the BuildKit fixture as an OCI layout for
// writing, as "remotecache verify --repair oci:DIR" does, and returns its
// directory, the store and the tagged manifest.
func rpFixture(t *testing.T) (string, *ocilayout.Store, ocispec.Descriptor) {
	t.Helper()
	dir := cachetest.Fixture(t)
	s, desc := lcOpen(t, dir)
	return dir, s, desc
}

// rpUsers returns, for each layer blob of cfg, the records whose results
// use it, with cachetest.Results's view of a result's chain.
func rpUsers(cfg *remotecache.CacheConfig) map[digest.Digest][]int {
	users := map[digest.Digest][]int{}
	for i, rec := range cfg.Records {
		for _, r := range rec.Results {
			for l := r.LayerIndex; l >= 0; l = cfg.Layers[l].ParentIndex {
				if b := cfg.Layers[l].Blob; !slices.Contains(users[b], i) {
					users[b] = append(users[b], i)
				}
			}
		}
	}
	return users
}

func TestRepairDropsTheResultsOfAMissingBlob(t *testing.T) {
	ctx := context.Background()
	dir, store, desc := rpFixture(t)
	m, cfg := tcRead(t, store, desc)
	// A blob some results use and others do not.
	users := rpUsers(cfg)
	var gone ocispec.Descriptor
	for _, l := range m.Layers {
		if n := len(users[l.Digest]); n > 1 && n < 8 {
			gone = l
			break
		}
	}
	t.Logf("deleting %s, used by the results of records %v", gone.Digest, users[gone.Digest])
	if err := os.Remove(cachetest.LayoutBlobPath(dir, gone.Digest)); err != nil {
		t.Fatal(err)
	}
	if problems, err := remotecache.Verify(ctx, store, desc); err != nil || len(problems) != 1 {
		t.Fatalf("Verify before repair: %v %v, want the missing blob", problems, err)
	}

	rep, err := remotecache.Repair(ctx, store, desc, store)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.NeedsRepair() || !rep.Written || rep.Format != remotecache.FormatImageManifest {
		t.Fatalf("report %+v", rep)
	}
	if want := []remotecache.MissingBlob{{Digest: gone.Digest, Size: gone.Size}}; !slices.Equal(rep.Missing, want) {
		t.Errorf("missing %+v, want %+v", rep.Missing, want)
	}
	var dropped []int
	for _, d := range rep.Dropped {
		dropped = append(dropped, d.Record.Index)
		if d.Reason != remotecache.DroppedMissing || !slices.Equal(d.Missing, []digest.Digest{gone.Digest}) {
			t.Errorf("dropped %+v", d)
		}
	}
	if !slices.Equal(dropped, users[gone.Digest]) {
		t.Errorf("dropped the results of records %v, want those using %s: %v", dropped, gone.Digest, users[gone.Digest])
	}
	if rep.After.Results != rep.Before.Results-len(rep.Dropped) || rep.After.Records != rep.Before.Records {
		t.Errorf("counts %+v -> %+v", rep.Before, rep.After)
	}

	if err := store.Tag(ctx, "latest", rep.Manifest); err != nil {
		t.Fatal(err)
	}
	if problems, err := remotecache.Verify(ctx, store, rep.Manifest); err != nil || len(problems) > 0 {
		t.Fatalf("Verify after repair: %v %v", problems, err)
	}
	// Every record stays, linked as before, with its results but those
	// using the blob.
	_, back := tcRead(t, store, rep.Manifest)
	want, got := lcAllResults(cfg), lcAllResults(back)
	keys := cachetest.RecordKeys(cfg)
	for _, i := range users[gone.Digest] {
		want[keys[i]] = nil
	}
	for k, rs := range want {
		if g, ok := got[k]; !ok || !slices.Equal(g, rs) {
			t.Errorf("record %.20s: results %q (kept %v), want %q", k, g, ok, rs)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d records after repair, want %d", len(got), len(want))
	}

	// Repaired, the cache needs no more repair.
	again, err := remotecache.Repair(ctx, store, rep.Manifest, store)
	if err != nil || again.NeedsRepair() || again.Written {
		t.Errorf("second repair: %+v, %v", again, err)
	}
}

// TestRepairKeepsTheForm repairs a cache of each form into its own form.
func TestRepairKeepsTheForm(t *testing.T) {
	ctx := context.Background()
	src, desc := itFixture(t)
	for _, f := range []remotecache.ManifestFormat{remotecache.FormatImageManifest, remotecache.FormatOCIIndex, remotecache.FormatManifestList, remotecache.FormatConfigOnly} {
		store := tcStore(t)
		md := cachetest.Copy(t, src, desc, store, remotecache.WithManifestFormat(f))
		m, cfg := tcRead(t, store, md)
		users := rpUsers(cfg)
		last := m.Layers[len(m.Layers)-1].Digest
		if err := store.Delete(ctx, last); err != nil {
			t.Fatal(err)
		}
		rep, err := remotecache.Repair(ctx, store, md, store)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if rep.Format != f || len(rep.Dropped) != len(users[last]) {
			t.Errorf("%s: form %s, %d dropped, want %d", f, rep.Format, len(rep.Dropped), len(users[last]))
		}
		m2, err := remotecache.ReadManifest(ctx, store, rep.Manifest)
		if err != nil || m2.Format != f {
			t.Fatalf("%s: repaired manifest %+v, %v", f, m2, err)
		}
		if problems, err := remotecache.Verify(ctx, store, rep.Manifest); err != nil || len(problems) > 0 {
			t.Errorf("%s: Verify after repair: %v %v", f, problems, err)
		}
	}
}

func TestRepairNothingMissingWritesNothing(t *testing.T) {
	dir, store, desc := rpFixture(t)
	before := cachetest.Snapshot(t, dir)
	rep, err := remotecache.Repair(context.Background(), store, desc, store)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NeedsRepair() || rep.Written || len(rep.Dropped) != 0 || rep.After != rep.Before || rep.Before.Records != cachetest.FixtureRecords {
		t.Errorf("report %+v", rep)
	}
	cachetest.Unchanged(t, before, cachetest.Snapshot(t, dir))
}

func TestRepairDryRun(t *testing.T) {
	dir, store, desc := rpFixture(t)
	m, _ := tcRead(t, store, desc)
	if err := os.Remove(cachetest.LayoutBlobPath(dir, m.Layers[len(m.Layers)-1].Digest)); err != nil {
		t.Fatal(err)
	}
	before := cachetest.Snapshot(t, dir)
	rep, err := remotecache.Repair(context.Background(), store, desc, nil, remotecache.WithRepairDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.NeedsRepair() || rep.Written || len(rep.Dropped) == 0 || rep.After.Results != rep.Before.Results-len(rep.Dropped) {
		t.Errorf("report %+v", rep)
	}
	cachetest.Unchanged(t, before, cachetest.Snapshot(t, dir))
}

// rpFaulty answers Info for one blob with an error, for the rest as its
// store does.
type rpFaulty struct {
	content.Store
	blob digest.Digest
	err  error
	size int64 // if not 0, the size Info gives the blob instead
}

func (f rpFaulty) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if dgst == f.blob && f.err != nil {
		return content.Info{}, f.err
	}
	info, err := f.Store.Info(ctx, dgst)
	if dgst == f.blob && f.size != 0 {
		info.Size = f.size
	}
	return info, err
}

func TestRepairFailsOnOtherErrorsAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := cachetest.Fixture(t)
	store, err := local.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc := itFixtureManifestDesc(t)
	m, _ := tcRead(t, store, desc)
	// One blob is gone (so there is something to repair) and the store
	// answers 503 for another: Repair fails and writes nothing.
	if err := store.Delete(ctx, m.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	flaky := m.Layers[1].Digest
	for _, tc := range []struct {
		name  string
		src   rpFaulty
		class error
	}{
		{"503", rpFaulty{Store: store, blob: flaky, err: errors.Join(errors.New("HEAD blob: 503 Service Unavailable"), errdefs.ErrUnavailable)}, errdefs.ErrUnavailable},
		{"denied", rpFaulty{Store: store, blob: flaky, err: errdefs.ErrPermissionDenied}, errdefs.ErrPermissionDenied},
		{"unclassed", rpFaulty{Store: store, blob: flaky, err: errors.New("connection reset")}, errdefs.ErrUnknown},
		{"wrong size", rpFaulty{Store: store, blob: flaky, size: 7}, errdefs.ErrFailedPrecondition},
	} {
		spy := &tcSpyIngester{Store: store}
		before := cachetest.Snapshot(t, dir)
		rep, err := remotecache.Repair(ctx, tc.src, desc, spy)
		if !errors.Is(err, tc.class) || !containsText(err, string(flaky)) {
			t.Errorf("%s: %v, want an error of class %v naming %s", tc.name, err, tc.class, flaky)
		}
		if rep.Written || len(spy.attempts) > 0 {
			t.Errorf("%s: wrote %v (report %+v)", tc.name, spy.attempts, rep)
		}
		cachetest.Unchanged(t, before, cachetest.Snapshot(t, dir))
	}
}

func TestRepairNothingLeft(t *testing.T) {
	dir, store, desc := rpFixture(t)
	_, cfg := tcRead(t, store, desc)
	// The base layer: every result uses it.
	base := cfg.Layers[0].Blob
	for _, l := range cfg.Layers {
		if l.ParentIndex == -1 {
			base = l.Blob
		}
	}
	if err := os.Remove(cachetest.LayoutBlobPath(dir, base)); err != nil {
		t.Fatal(err)
	}
	before := cachetest.Snapshot(t, dir)
	rep, err := remotecache.Repair(context.Background(), store, desc, store)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || rep.Written || len(rep.Dropped) != rep.Before.Results {
		t.Errorf("every result gone: %v, report %+v", err, rep)
	}
	cachetest.Unchanged(t, before, cachetest.Snapshot(t, dir))
}

func TestRepairArguments(t *testing.T) {
	_, store, desc := rpFixture(t)
	ctx := context.Background()
	if _, err := remotecache.Repair(ctx, nil, desc, store); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil source: %v", err)
	}
	if _, err := remotecache.Repair(ctx, store, desc, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil destination: %v", err)
	}
	if _, err := remotecache.Repair(ctx, store, desc, store, remotecache.WithRepairExport(remotecache.WithConcurrency(0))); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad export option: %v", err)
	}
	if _, err := remotecache.Repair(ctx, store, desc, store, remotecache.WithRepairImport(remotecache.WithMaxBlobSize(10))); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("manifest over the limit: %v", err)
	}
}
