package ocilayout

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/pkg/errors"
)

// flock takes a flock(2) lock on f, waiting with backoff until it is free
// or ctx is done. how is syscall.LOCK_SH or syscall.LOCK_EX. A held lock is
// converted, but not atomically: Linux drops the held lock first, and a
// conversion that fails (or one ctx ends the wait for) leaves f with no
// lock at all. exclusive is how a held shared lock is converted safely.
func flock(ctx context.Context, f *os.File, how int) error {
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return errors.Wrapf(err, "locking %s", f.Name())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Wrapf(ctx.Err(), "waiting for lock %s", f.Name())
		case <-t.C:
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

func funlock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// withFileLock runs fn holding an exclusive lock on path, made if absent.
func withFileLock(ctx context.Context, path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return errors.Wrap(err, "opening lock")
	}
	defer f.Close()
	if err := flock(ctx, f, syscall.LOCK_EX); err != nil {
		return err
	}
	defer funlock(f)
	return fn()
}

// exclusive converts s's shared lock on .remotecache.lock to an exclusive
// one, waiting (bounded by ctx) until every other Store on the directory,
// in any process, has closed. share converts it back; call it once, on
// every path, exclusive's error or not.
//
// The conversion drops s's shared lock while it waits (see flock), so
// first it takes .remotecache.prune.lock, the gate, exclusively, without
// waiting, and holds it until share has converted back: only the gate's
// holder ever takes .remotecache.lock exclusively, so while s holds the
// gate no other Prune can run, whether s holds its own shared lock at that
// moment or not, and taking the shared lock back in share cannot wait.
//
// A gate held elsewhere means another Prune, through another Store; that
// Prune waits for s to close, so waiting for it would deadlock both. That
// is errdefs.ErrUnavailable, at once.
func (s *Store) exclusive(ctx context.Context) (share func() error, err error) {
	gate, err := os.OpenFile(filepath.Join(s.dir, pruneLockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return func() error { return nil }, errors.Wrap(err, "opening lock")
	}
	if err := syscall.Flock(int(gate.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		gate.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			err = errors.Wrapf(errdefs.ErrUnavailable, "oci layout %s: another Prune is in progress (and waits for this Store to close)", s.dir)
		} else {
			err = errors.Wrapf(err, "locking %s", gate.Name())
		}
		return func() error { return nil }, err
	}
	share = func() error {
		// Blocking, but it cannot block: only the gate's holder, this
		// call, ever holds the exclusive lock.
		err := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_SH)
		gate.Close() // releases the gate, after the shared lock is back
		return errors.Wrapf(err, "taking back the shared lock %s", s.lock.Name())
	}
	return share, flock(ctx, s.lock, syscall.LOCK_EX)
}
