// Package errclass gives an error a class of github.com/containerd/errdefs
// without changing its text, so that errors.Is finds both the class and
// everything the error wraps.
package errclass

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
