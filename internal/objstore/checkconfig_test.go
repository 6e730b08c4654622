package objstore

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCheckConfigOnly(t *testing.T) {
	for cfg, ok := range map[string]bool{
		`{"layers":[{"blob":"sha256:aa","annotations":{"diffID":"sha256:bb"}}]}`: true,
		`{}`: true,
		`{"layers":[{"blob":"sha256:aa","parent":-1}]}`:              false,
		`{"layers":[{"blob":"sha256:aa","annotations":{"size":3}}]}`: false,
		`not json`: false,
	} {
		err := checkConfigOnly([]byte(cfg), "s3")
		if (err == nil) != ok || (err != nil && !errdefs.IsInvalidArgument(err)) {
			t.Errorf("checkConfigOnly(%s) = %v", cfg, err)
		}
		if err != nil && strings.HasPrefix(cfg, "{") && !strings.Contains(err.Error(), "an s3 cache has the config-only form") {
			t.Errorf("checkConfigOnly(%s) = %v, not naming the config-only form", cfg, err)
		}
	}
}
