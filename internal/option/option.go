// Package option holds what the packages' functional options share: the
// check of a number's range, with one error for all.
package option

import (
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"
)

// InRange returns the option that sets, with set, a setting to n, which
// must be from lo to hi: what names the setting and bounds says the range
// in the error, of class errdefs.ErrInvalidArgument ("part size 1: must be
// from 5 MiB to 5 GiB"; a time.Duration is shown as one).
func InRange[O any, N ~int | ~int64](n, lo, hi N, what, bounds string, set func(O, N)) func(O) error {
	return func(o O) error {
		if n < lo || n > hi {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "%s %v: must be %s", what, n, bounds)
		}
		set(o, n)
		return nil
	}
}
