package remotecache_test

import (
	"testing"

	"github.com/buildcache/remotecache/internal/cachetest"
)

func TestMain(m *testing.M) { cachetest.Main(m) }
