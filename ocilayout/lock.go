package ocilayout

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/pkg/errors"
)

// flock takes a flock(2) lock on f, waiting with backoff until it is free
// or ctx is done. how is syscall.LOCK_SH or syscall.LOCK_EX; a held lock is
// converted.
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
