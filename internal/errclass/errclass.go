// Package errclass gives an error a class of github.com/containerd/errdefs
// without changing its text, so that errors.Is finds both the class and
// everything the error wraps.
package errclass

import (
	"context"
	"errors"
	"net/http"

	"github.com/containerd/errdefs"
)

// classes are the classes of errors: containerd/errdefs's, and the context
// errors, which errdefs.IsCanceled and errdefs.IsDeadlineExceeded take for
// theirs.
var classes = []error{
	errdefs.ErrUnknown, errdefs.ErrInvalidArgument, errdefs.ErrNotFound,
	errdefs.ErrAlreadyExists, errdefs.ErrPermissionDenied,
	errdefs.ErrResourceExhausted, errdefs.ErrFailedPrecondition,
	errdefs.ErrConflict, errdefs.ErrNotModified, errdefs.ErrAborted,
	errdefs.ErrOutOfRange, errdefs.ErrNotImplemented, errdefs.ErrInternal,
	errdefs.ErrUnavailable, errdefs.ErrDataLoss, errdefs.ErrUnauthenticated,
	context.Canceled, context.DeadlineExceeded,
}

// Has tells whether err has a class: errors.Is finds one of errdefs's
// sentinels or a context error in it.
func Has(err error) bool {
	for _, c := range classes {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// Ensure returns err if it has a class, else err with class.
func Ensure(err, class error) error {
	if err == nil || Has(err) {
		return err
	}
	return With(err, class)
}

// With returns err with class (an errdefs sentinel such as
// errdefs.ErrInvalidArgument) added: its text is err's, and errors.Is and
// errors.As see err's chain and class. A nil err gives nil.
func With(err, class error) error {
	if err == nil {
		return nil
	}
	return &classed{err: err, class: class}
}

type classed struct {
	err, class error
}

func (e *classed) Error() string   { return e.err.Error() }
func (e *classed) Unwrap() []error { return []error{e.err, e.class} }

// statusClasses are the classes of the HTTP status codes that mean one
// thing to every store: registries and object stores alike.
var statusClasses = map[int]error{
	http.StatusUnauthorized:                 errdefs.ErrUnauthenticated,
	http.StatusForbidden:                    errdefs.ErrPermissionDenied,
	http.StatusNotFound:                     errdefs.ErrNotFound,
	http.StatusConflict:                     errdefs.ErrConflict,
	http.StatusPreconditionFailed:           errdefs.ErrFailedPrecondition,
	http.StatusRequestedRangeNotSatisfiable: errdefs.ErrOutOfRange,
	http.StatusNotImplemented:               errdefs.ErrNotImplemented,
}

// OfStatus returns the class of an HTTP status code that means one thing
// to every store, and whether it has one: not found only for 404, so that
// a 503 or a refused credential never reads as a missing blob, and
// unavailable for 5xx but 501. The codes that stores read apart (400,
// 405, 408, 429, the other 4xx) are each caller's.
func OfStatus(code int) (error, bool) {
	if class, ok := statusClasses[code]; ok {
		return class, true
	}
	if code >= 500 {
		return errdefs.ErrUnavailable, true
	}
	return nil, false
}
