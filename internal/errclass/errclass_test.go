package errclass_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/buildcache/remotecache/internal/errclass"
)

func TestWith(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	err := errclass.With(cause, errdefs.ErrNotFound)
	if err.Error() != cause.Error() {
		t.Errorf("text %q, want %q", err, cause)
	}
	var pe *fs.PathError
	if !errdefs.IsNotFound(err) || !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Errorf("class or chain lost: %v", err)
	}
	if errclass.With(nil, errdefs.ErrNotFound) != nil {
		t.Error("With(nil) is not nil")
	}
}
