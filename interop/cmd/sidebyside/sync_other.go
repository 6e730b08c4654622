//go:build !windows

package main

import "syscall"

// syncDisks writes every dirty page to disk (sync(2)), so that a timed
// run does not pay for the writes of the one before.
func syncDisks() { syscall.Sync() }
