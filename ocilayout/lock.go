package ocilayout

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"github.com/gofrs/flock"
	"github.com/pkg/errors"
)

// newLock returns the lock on the file at path, which is made if absent
// when first locked: flock(2) on Unix, LockFileEx on Windows. Both lock an
// open file, so two locks of one process conflict as those of two
// processes do. The file is opened read-write, not read-only as
// gofrs/flock's default: an exclusive lock through NFS's fcntl emulation
// of flock(2) needs a file open for writing.
func newLock(path string) *flock.Flock {
	return flock.New(path, flock.SetFlag(os.O_RDWR|os.O_CREATE), flock.SetPermissions(0o644))
}

// lockWait takes l with try (l.TryLock or l.TryRLock), waiting with
// backoff until it is free or ctx is done. The backoff starts at a
// millisecond, because index.json.lock is held for as long as one small
// write takes; gofrs/flock's TryLockContext polls at one fixed interval.
//
// A held lock is never converted by try: on Windows LockFileEx does not
// convert, and on Linux flock(2) converts by dropping the lock first. To
// go from shared to exclusive, Unlock and then take the exclusive lock;
// exclusive is how a Store's shared lock is converted safely.
func lockWait(ctx context.Context, l *flock.Flock, try func() (bool, error)) error {
	wait := time.Millisecond
	for {
		ok, err := try()
		if err != nil {
			return errors.Wrapf(err, "locking %s", l.Path())
		}
		if ok {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Wrapf(ctx.Err(), "waiting for lock %s", l.Path())
		case <-t.C:
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// withFileLock runs fn holding an exclusive lock on path, made if absent.
func withFileLock(ctx context.Context, path string, fn func() error) error {
	l := newLock(path)
	if err := lockWait(ctx, l, l.TryLock); err != nil {
		return err
	}
	defer l.Unlock()
	return fn()
}

// exclusive converts s's shared lock on .remotecache.lock to an exclusive
// one, waiting (bounded by ctx) until every other Store on the directory,
// in any process, has closed. share converts it back; call it once, on
// every path, exclusive's error or not.
//
// The conversion drops s's shared lock, then waits for the exclusive one
// (see lockWait), so s holds no lock while it waits, and none if the wait
// fails. So first it takes .remotecache.prune.lock, the gate, exclusively,
// without waiting, and holds it until share has taken the shared lock
// back: only the gate's holder ever takes .remotecache.lock exclusively,
// so while s holds the gate no other Prune can run, whether s holds its
// own shared lock at that moment or not, and taking the shared lock back
// in share cannot wait.
//
// A gate held elsewhere means another Prune, through another Store; that
// Prune waits for s to close, so waiting for it would deadlock both. That
// is errdefs.ErrUnavailable, at once.
func (s *Store) exclusive(ctx context.Context) (share func() error, err error) {
	none := func() error { return nil }
	gate := newLock(filepath.Join(s.dir, pruneLockFile))
	ok, err := gate.TryLock()
	if err != nil {
		return none, errors.Wrapf(err, "locking %s", gate.Path())
	}
	if !ok {
		return none, errors.Wrapf(errdefs.ErrUnavailable, "oci layout %s: another Prune is in progress (and waits for this Store to close)", s.dir)
	}
	share = func() error {
		// s.lock is held exclusive, or not at all if the wait failed;
		// Unlock is a no-op then. RLock blocks, but it cannot block:
		// only the gate's holder, this call, ever holds the exclusive
		// lock.
		err := s.lock.Unlock()
		if err == nil {
			err = s.lock.RLock()
		}
		gate.Unlock() // releases the gate, after the shared lock is back
		return errors.Wrapf(err, "taking back the shared lock %s", s.lock.Path())
	}
	if err := s.lock.Unlock(); err != nil {
		return share, errors.Wrapf(err, "unlocking %s", s.lock.Path())
	}
	return share, lockWait(ctx, s.lock, s.lock.TryLock)
}
