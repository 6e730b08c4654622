package objstore

import (
	"net/http"

	"github.com/containerd/errdefs"
)

// StatusClass returns the errdefs class of a failure an object store's
// server answered with status code, when its error code did not say more:
// not found only for 404, so that a 503 or a refused credential never
// reads as a missing blob; unavailable for what a retry may cure (408,
// 429, 5xx but 501); invalid argument for any other 4xx.
func StatusClass(code int) error {
	switch {
	case code == http.StatusNotFound:
		return errdefs.ErrNotFound
	case code == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case code == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case code == http.StatusConflict:
		return errdefs.ErrConflict
	case code == http.StatusPreconditionFailed:
		return errdefs.ErrFailedPrecondition
	case code == http.StatusRequestedRangeNotSatisfiable:
		return errdefs.ErrOutOfRange
	case code == http.StatusNotImplemented:
		return errdefs.ErrNotImplemented
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return errdefs.ErrUnavailable
	case code >= 400:
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrUnknown
}
