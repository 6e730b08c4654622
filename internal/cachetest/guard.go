package cachetest

import (
	"testing"
	"time"
)

// HangGuard is how long a test waits for something that must end before
// it calls it a hang: far beyond any wait a test means, so that it is a
// guard, never a measure (tests do not fail on time).
const HangGuard = time.Minute

// Returns runs f and returns its error; if f has not returned within
// HangGuard, it fails t as hung, saying what f does.
func Returns(t testing.TB, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(HangGuard):
		t.Fatalf("%s: still running after %v", what, HangGuard)
		return nil
	}
}
