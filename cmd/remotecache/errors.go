package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

// usageError is bad usage: exit status 2, with the usage text.
type usageError struct {
	cmd *cobra.Command // whose usage to print; nil: the command that ran
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func asUsageError(err error) (*usageError, bool) {
	var ue *usageError
	ok := errors.As(err, &ue)
	return ue, ok
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// failures are the errors of the steps of an export that failed. An
// export stops at its first error, but blobs are written concurrently:
// others may have failed too, for the same reason or another.
type failures struct {
	mu   sync.Mutex
	errs []error
}

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

// line is the line that tells why the tool failed: err, then each other
// cause that a failed step had, once. A step that failed because another
// had already failed (its context was cancelled) is no cause of its own,
// and steps that failed for the cause told already are only counted.
func (f *failures) line(err error) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := oneLine(err.Error())
	told := map[string]bool{rootCause(err): true}
	same := 0
	var others []string
	for _, e := range f.errs {
		c := rootCause(e)
		// Some stores give the context's error as text only.
		if errors.Is(e, context.Canceled) || c == context.Canceled.Error() || strings.Contains(line, e.Error()) {
			continue
		}
		if told[c] {
			same++
			continue
		}
		told[c] = true
		others = append(others, oneLine(e.Error()))
	}
	if same > 0 {
		line += fmt.Sprintf("; %d more failed the same way", same)
	}
	for _, o := range others {
		line += "; and " + o
	}
	return line
}

// rootCause is the message of the innermost error that err wraps: what
// two failures have in common when they failed for the same reason.
func rootCause(err error) string {
	for {
		var next error
		switch e := err.(type) {
		case interface{ Unwrap() error }:
			next = e.Unwrap()
		case interface{ Unwrap() []error }:
			if u := e.Unwrap(); len(u) > 0 {
				next = u[0]
			}
		case interface{ Cause() error }:
			next = e.Cause()
		}
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
