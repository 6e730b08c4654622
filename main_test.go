package remotecache_test

import (
	"os"
	"testing"

	"github.com/containerd/log"
)

func TestMain(m *testing.M) {
	// containerd's local store warns about fsverity on every temp dir.
	_ = log.SetLevel("error")
	os.Exit(m.Run())
}
