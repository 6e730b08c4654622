package objstore_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// orphans exports a cache under "gone", removes its config and ages all
// its blobs: every blob is an old orphan.
func orphans(t *testing.T, m *mem, s *objstore.Store) []string {
	t.Helper()
	objstoretest.Export(t, s, cachegen.NewWithOptions(3, 10, cachegen.Options{BlobSize: 40}))
	var blobs []string
	for _, k := range m.keys() {
		if strings.HasPrefix(k, "blobs/") {
			m.age(k, 2*time.Hour)
			blobs = append(blobs, k)
		} else {
			m.mu.Lock()
			delete(m.objs, k)
			m.mu.Unlock()
		}
	}
	return blobs
}

// Either way of making sure a blob did not change since the listing (a
// conditional delete, or a Head again) keeps one that an export refreshes
// after it, and removes the others; a dry run removes nothing.
func TestPruneKeepsChangedBlobs(t *testing.T) {
	for _, ifMatch := range []bool{false, true} {
		m := newMem()
		s := newStore(t, m, func(c *objstore.Config) { c.DeleteIfMatch = ifMatch; c.Names = []string{"gone"} })
		blobs := orphans(t, m, s)
		rep, err := objstore.Prune(context.Background(), s, objstore.DryRun, objstore.GracePeriod(time.Hour))
		if err != nil || len(rep.Blobs) != len(blobs) || m.count("Delete") != 0 {
			t.Fatalf("DeleteIfMatch %v: dry run %+v, %v, %d deletes", ifMatch, rep, err, m.count("Delete"))
		}
		// An export refreshes a blob once Prune has listed the blobs.
		refreshed := blobs[0]
		var once sync.Once
		m.afterList = func() { once.Do(func() { m.Touch(context.Background(), objstore.Object{Key: refreshed}) }) }
		rep, err = s.Prune(context.Background(), objstore.PruneOptions{GracePeriod: time.Hour})
		if err != nil || len(rep.Blobs) != len(blobs)-1 || rep.Kept != 1 {
			t.Errorf("DeleteIfMatch %v: prune %d removed, %d kept, %v; want %d and 1", ifMatch, len(rep.Blobs), rep.Kept, err, len(blobs)-1)
		}
		if keys := m.keys(); !slices.Equal(keys, []string{refreshed}) {
			t.Errorf("DeleteIfMatch %v: left %q, want %q", ifMatch, keys, refreshed)
		}
	}
}

// A blobs directory outside the manifests directory, even one that holds
// it (here the prefix itself), does not hide the configs: their blobs are
// kept.
func TestPruneBlobsAroundConfigs(t *testing.T) {
	for _, blobsDir := range []string{"", "ci/", "manifests/blobs/"} {
		m := newMem()
		s := newStore(t, m, func(c *objstore.Config) { c.BlobsDir, c.BlobsPrefix = blobsDir, blobsDir })
		g := cachegen.NewWithOptions(4, 10, cachegen.Options{BlobSize: 40})
		objstoretest.Export(t, s, g)
		for _, k := range m.keys() {
			m.age(k, 2*time.Hour)
		}
		rep, err := s.Prune(context.Background(), objstore.PruneOptions{GracePeriod: time.Hour})
		if err != nil || len(rep.Blobs) != 0 {
			t.Errorf("blobs under %q: removed %d, %v", blobsDir, len(rep.Blobs), err)
		}
		objstoretest.Verify(t, s)
	}
}

// Prune's options and refusals: a negative grace period, a read-only
// store but in a dry run, a config that is not one.
func TestPruneRefuses(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	s := newStore(t, m, nil)
	if _, err := objstore.Prune(ctx, s, objstore.GracePeriod(-1)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("negative grace period: %v", err)
	}
	ro := newStore(t, m, func(c *objstore.Config) { c.ReadOnly = true })
	if _, err := objstore.Prune[func(*objstore.PruneOptions) error](ctx, ro); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("read-only prune: %v", err)
	}
	if _, err := objstore.Prune(ctx, ro, objstore.DryRun); err != nil {
		t.Errorf("read-only dry run: %v", err)
	}
	objstoretest.Export(t, s, cachegen.NewWithOptions(5, 5, cachegen.Options{}))
	m.Put(ctx, "manifests/garbage", strings.NewReader("{not json"), 9, "")
	if _, err := s.Prune(ctx, objstore.PruneOptions{}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "mem://manifests/garbage") {
		t.Errorf("prune with a config that is not one: %v", err)
	}
	if n := m.count("Delete"); n != 0 {
		t.Errorf("%d deletes", n)
	}
}

// The shared option setters refuse what no store takes.
func TestOptions(t *testing.T) {
	o := objstore.DefaultOptions("m", "b")
	for _, err := range []error{
		o.SetNames(nil, nil),
		o.SetNames([]string{"a", ""}, nil),
		o.SetNames([]string{"./"}, func(n string) (string, error) { return strings.Trim(n, "./"), nil }),
		o.SetTouchRefresh(-time.Second),
		o.SetSpoolDir(t.TempDir() + "/missing"),
	} {
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("setter = %v, want invalid argument", err)
		}
	}
	o.BlobsPrefix = "m"
	if err := o.Check(); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Check of one prefix for both = %v", err)
	}
	if err := o.SetNames([]string{"a", "b"}, nil); err != nil || !slices.Equal(o.Names, []string{"a", "b"}) {
		t.Errorf("SetNames: %v, %q", err, o.Names)
	}
}

// A Prune with the default grace period keeps a blob that an export in
// progress may have found and reused without refreshing it (younger than
// the store's touch refresh age): without that, the export's config would
// name a blob Prune had just removed. The default is the larger of
// DefaultGracePeriod and the touch refresh age; a grace period given
// explicitly is the one used, window and all.
func TestPruneDefaultGraceCoversTouchRefresh(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		touch        time.Duration
		opts         []func(*objstore.PruneOptions) error
		found, other bool // whether the blob the export found, and the other orphans, are removed
	}{
		// Found, not refreshed (2h < 24h): everything is kept.
		{touch: objstore.DefaultTouchRefresh},
		// Found and refreshed (2h > 90m): it is kept, the others go.
		{touch: 90 * time.Minute, other: true},
		// The grace period asked for: the window the doc warns of.
		{touch: objstore.DefaultTouchRefresh, opts: []func(*objstore.PruneOptions) error{objstore.GracePeriod(time.Hour)}, found: true, other: true},
	} {
		m := newMem()
		s := newStore(t, m, func(c *objstore.Config) { c.Names = []string{"gone"}; c.TouchRefresh = tc.touch })
		blobs := orphans(t, m, s) // two hours old
		// An export finds the first blob, so it will not write it again.
		if _, err := s.Info(ctx, digest.Digest(strings.TrimPrefix(blobs[0], "blobs/"))); err != nil {
			t.Fatal(err)
		}
		if _, err := objstore.Prune(ctx, s, tc.opts...); err != nil {
			t.Fatal(err)
		}
		keys := m.keys()
		found := !slices.Contains(keys, blobs[0])
		other := len(keys) == 0 || (len(keys) == 1 && keys[0] == blobs[0])
		if found != tc.found || other != tc.other || (!other && len(keys) != len(blobs)) {
			t.Errorf("touch refresh %v, %d options: found blob removed %v, others removed %v (%d of %d blobs left); want %v, %v",
				tc.touch, len(tc.opts), found, other, len(keys), len(blobs), tc.found, tc.other)
		}
	}
}
