package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/gofrs/flock"

	"github.com/buildcache/remotecache/ocilayout"
)

// openDestination gives up waiting for a prune of the layout when its
// context ends, rather than wait for ever.
func TestOpenDestinationContext(t *testing.T) {
	dir := t.TempDir()
	s, err := ocilayout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Hold the lock exclusively, as a Prune does while it removes blobs.
	l := flock.New(filepath.Join(dir, ".remotecache.lock"))
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Fatalf("locking %s: %v, %v", l, ok, err)
	}
	defer l.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = cachetest.Returns(t, "openDestination with a 100ms deadline", func() error {
		d, err := openDestination(ctx, location{scheme: schemeOCI, path: dir, tag: defaultTag})
		if err == nil {
			d.Close()
		}
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("openDestination while the layout is being pruned = %v, want deadline exceeded", err)
	}
}
