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

func TestOfStatus(t *testing.T) {
	for code, want := range map[int]error{
		401: errdefs.ErrUnauthenticated, 403: errdefs.ErrPermissionDenied,
		404: errdefs.ErrNotFound, 409: errdefs.ErrConflict,
		412: errdefs.ErrFailedPrecondition, 416: errdefs.ErrOutOfRange,
		501: errdefs.ErrNotImplemented, 500: errdefs.ErrUnavailable,
		503: errdefs.ErrUnavailable, 599: errdefs.ErrUnavailable,
		200: nil, 400: nil, 405: nil, 408: nil, 429: nil, 499: nil,
	} {
		got, ok := errclass.OfStatus(code)
		if got != want || ok != (want != nil) {
			t.Errorf("OfStatus(%d) = %v, %v; want %v", code, got, ok, want)
		}
	}
}
