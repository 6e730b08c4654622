package objstore

import (
	"net/http"

	"github.com/containerd/errdefs"

	"github.com/buildcache/remotecache/internal/errclass"
)

// StatusClass returns the errdefs class of a failure an object store's
// server answered with status code, when its error code did not say more:
// not found only for 404, so that a 503 or a refused credential never
// reads as a missing blob; unavailable for what a retry may cure (408,
// 429, 5xx but 501); invalid argument for any other 4xx.
func StatusClass(code int) error {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return errdefs.ErrUnavailable
	}
	if class, ok := errclass.OfStatus(code); ok {
		return class
	}
	if code >= 400 {
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrUnknown
}
