package objstore

import (
	"net/http"

	"github.com/containerd/errdefs"
)

// statusClasses are the classes of the status codes that say one.
var statusClasses = map[int]error{
	http.StatusNotFound:                     errdefs.ErrNotFound,
	http.StatusUnauthorized:                 errdefs.ErrUnauthenticated,
	http.StatusForbidden:                    errdefs.ErrPermissionDenied,
	http.StatusConflict:                     errdefs.ErrConflict,
	http.StatusPreconditionFailed:           errdefs.ErrFailedPrecondition,
	http.StatusRequestedRangeNotSatisfiable: errdefs.ErrOutOfRange,
	http.StatusNotImplemented:               errdefs.ErrNotImplemented,
	http.StatusRequestTimeout:               errdefs.ErrUnavailable,
	http.StatusTooManyRequests:              errdefs.ErrUnavailable,
}

// StatusClass returns the errdefs class of a failure an object store's
// server answered with status code, when its error code did not say more:
// not found only for 404, so that a 503 or a refused credential never
// reads as a missing blob; unavailable for what a retry may cure (408,
// 429, 5xx but 501); invalid argument for any other 4xx.
func StatusClass(code int) error {
	if class, ok := statusClasses[code]; ok {
		return class
	}
	switch {
	case code >= 500:
		return errdefs.ErrUnavailable
	case code >= 400:
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrUnknown
}
