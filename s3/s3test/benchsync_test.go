//go:build !windows

package s3test

import "syscall"

// benchSync writes every dirty page to disk (sync(2)), so that the timed
// runs do not pay for writing the source store.
func benchSync() { syscall.Sync() }
