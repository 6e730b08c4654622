package ocilayout

import (
	"io/fs"

	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/errclass"
)

// classify returns err with a class if it has none, keeping its text and
// chain: the errors of the file system (an *fs.PathError from Open,
// MkdirAll, Rename, ReadFile...) by their cause, anything else
// errdefs.ErrUnknown. Every exported function and method of this package
// classifies the errors it returns.
//
// fs.ErrExist is not errdefs.ErrAlreadyExists: from a Writer that class
// means the blob is there already, and an exporter skips the blob.
func classify(err error) error {
	if err == nil || errclass.Has(err) {
		return err
	}
	var class error = errdefs.ErrUnknown
	switch {
	case errors.Is(err, fs.ErrNotExist):
		class = errdefs.ErrNotFound
	case errors.Is(err, fs.ErrPermission):
		class = errdefs.ErrPermissionDenied
	case errors.Is(err, fs.ErrInvalid):
		class = errdefs.ErrInvalidArgument
	}
	return errclass.With(err, class)
}

// optionError is the error of an option that failed: invalid argument,
// unless the option gave it a class of its own.
func optionError(err error) error {
	if errclass.Has(err) {
		return err
	}
	return errclass.With(err, errdefs.ErrInvalidArgument)
}

// errReadOnly is returned by writes to a Store opened WithReadOnly.
func errReadOnly(dir, what string) error {
	return errors.Wrapf(errdefs.ErrFailedPrecondition, "oci layout %s: %s: opened read-only", dir, what)
}
