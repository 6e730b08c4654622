//go:build !windows

package regtest

import "syscall"

// benchSync writes every dirty page to disk (sync(2)), so that the timed
// runs do not pay for writing the source store.
func benchSync() { syscall.Sync() }
