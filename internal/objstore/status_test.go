package objstore_test

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/buildcache/remotecache/internal/objstore"
)

func TestStatusClass(t *testing.T) {
	for code, want := range map[int]error{
		404: errdefs.ErrNotFound, 401: errdefs.ErrUnauthenticated, 403: errdefs.ErrPermissionDenied,
		409: errdefs.ErrConflict, 412: errdefs.ErrFailedPrecondition, 416: errdefs.ErrOutOfRange,
		501: errdefs.ErrNotImplemented, 408: errdefs.ErrUnavailable, 429: errdefs.ErrUnavailable,
		500: errdefs.ErrUnavailable, 503: errdefs.ErrUnavailable, 400: errdefs.ErrInvalidArgument,
		413: errdefs.ErrInvalidArgument, 304: errdefs.ErrUnknown,
	} {
		if got := objstore.StatusClass(code); !errors.Is(got, want) {
			t.Errorf("StatusClass(%d) = %v, want %v", code, got, want)
		}
	}
}
