// Package offline holds the checks of an object store that make no
// request, which the s3 and azblob packages' own tests share: a store's
// keys and name, what it refuses before it asks the server, and what its
// backend's error classifier passes through. It needs
// nothing the store modules do not already require (objstoretest needs
// the layout and generated caches), and is for tests only.
package offline

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Store is an object store as the checks use it: s3.Store or
// azblob.Store, P its PruneOption and R its PruneReport.
type Store[P, R any] interface {
	content.Ingester
	content.InfoProvider
	String() string
	Names() []string
	BlobKey(dgst digest.Digest) string
	ConfigKey(name string) string
	TagsManifests() bool
	Prune(ctx context.Context, opts ...P) (R, error)
}

// CheckKeys checks a store's String, the key of its first name's config
// and the key of the blob of d.
func CheckKeys[P, R any](t testing.TB, store Store[P, R], d digest.Digest, str, config, blob string) {
	t.Helper()
	if s := store.String(); s != str {
		t.Errorf("String() = %q, want %q", s, str)
	}
	if k := store.ConfigKey(store.Names()[0]); k != config {
		t.Errorf("ConfigKey = %q, want %q", k, config)
	}
	if k := store.BlobKey(d); k != blob {
		t.Errorf("BlobKey = %q, want %q", k, blob)
	}
	if !store.TagsManifests() {
		t.Error("TagsManifests() = false")
	}
}

// Checks are the checks of a store type that Run runs, O its Option.
type Checks[O, P, R any] struct {
	// Open opens a store with opts, on an endpoint nothing listens on.
	Open func(t testing.TB, opts ...O) Store[P, R]
	// ReadOnly is the store's WithReadOnly().
	ReadOnly O
	// SpoolDir is the store's WithSpoolDir.
	SpoolDir func(dir string) O
	// NegativeGrace is the store's WithGracePeriod(-1).
	NegativeGrace P
}

// Run runs the checks, each as a subtest of t.
func (c Checks[O, P, R]) Run(t *testing.T) {
	t.Run("ReadOnlyRefusesWrites", func(t *testing.T) { checkReadOnly(t, c.Open(t, c.ReadOnly), c.NegativeGrace) })
	t.Run("InvalidDigests", func(t *testing.T) { checkInvalidDigest(t, c.Open(t)) })
	t.Run("SpoolFailure", func(t *testing.T) {
		dir := t.TempDir()
		checkSpoolFailure(t, c.Open(t, c.SpoolDir(dir)), dir)
	})
}

// checkReadOnly checks that a read-only store refuses a writer and Prune
// without a request, and that Prune with negativeGrace is an invalid
// argument.
func checkReadOnly[P, R any](t testing.TB, store Store[P, R], negativeGrace P) {
	t.Helper()
	ctx := context.Background()
	if _, err := store.Writer(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Writer = %v", err)
	}
	if _, err := store.Prune(ctx); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Prune = %v", err)
	}
	if _, err := store.Prune(ctx, negativeGrace); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Prune with a negative grace period = %v", err)
	}
}

// checkInvalidDigest checks that Info refuses a digest that would leave
// the blobs directory.
func checkInvalidDigest[P, R any](t testing.TB, store Store[P, R]) {
	t.Helper()
	if _, err := store.Info(context.Background(), "sha256:../../x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Info = %v", err)
	}
}

// checkSpoolFailure removes dir, the spool directory of store, and checks
// that a write too large for memory then fails, and so does its Commit,
// with a class: nothing is uploaded.
func checkSpoolFailure[P, R any](t testing.TB, store Store[P, R], dir string) {
	t.Helper()
	ctx := context.Background()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	w, err := store.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	big := make([]byte, 5<<20)
	if _, err := w.Write(big); err == nil {
		t.Fatal("Write to a missing spool directory succeeded")
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after a failed write succeeded")
	}
	err = w.Commit(ctx, 0, "")
	if err == nil || !strings.Contains(err.Error(), "spooling") || !errdefs.IsUnknown(err) {
		t.Errorf("Commit = %v, want the spool's failure, of a class", err)
	}
}

// CheckClassifyPassesThrough checks that a backend's classifier of SDK
// errors returns nil and a context error as they are (see
// objstore.Backend).
func CheckClassifyPassesThrough(t testing.TB, classify func(error) error) {
	t.Helper()
	if got := classify(context.Canceled); got != context.Canceled {
		t.Errorf("classify(context.Canceled) = %v", got)
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
