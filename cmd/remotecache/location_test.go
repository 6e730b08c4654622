package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/buildcache/remotecache/internal/cachetest"
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
	f, err := os.OpenFile(filepath.Join(dir, ".remotecache.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}

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
