package cachetest

import (
	"os"
	"testing"

	"github.com/containerd/log"
)

// QuietLogs sets containerd's log level to error: its local store warns
// about fsverity on every temporary directory, and the tests say what
// went wrong themselves.
func QuietLogs() { _ = log.SetLevel("error") }

// Main runs m's tests with QuietLogs: a package's TestMain when it needs
// nothing else.
func Main(m *testing.M) {
	QuietLogs()
	os.Exit(m.Run())
}
