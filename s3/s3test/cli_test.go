package s3test

import (
	"path/filepath"
	"testing"

	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// The command line tool end to end against a Versity gateway: s3:
// locations in copy, inspect, verify, merge, diff, trim, verify --repair
// and prune, in either direction and with oci: locations, configured as a
// user configures it, by the AWS SDK's environment.

// newCLI is the command with the environment that points it at the
// gateway, through the test's proxy.
func newCLI(t *testing.T, e *env) (*objstoretest.CLI, objstoretest.CLIStore) {
	t.Helper()
	c := objstoretest.NewCLI(t,
		"AWS_ENDPOINT_URL="+e.proxy.URL,
		"AWS_REGION="+region,
		"AWS_ACCESS_KEY_ID="+accessKey,
		"AWS_SECRET_ACCESS_KEY="+secretKey,
	)
	return c, objstoretest.CLIStore{
		Env: suiteEnv{e},
		// A prefix is a plain string join, as BuildKit's s3 cache has
		// it: the directory ci/ is the prefix "ci/".
		Location: func(dir, names string) string {
			loc := "s3:" + e.bucket
			if dir != "" {
				loc += "/" + dir + "/"
			}
			if names != "" {
				loc += ":" + names
			}
			return loc
		},
		What: "bucket",
	}
}

// TestCLI copies BuildKit's fixture into a bucket and back, checks it
// there, merges it with a layout, compares, trims and repairs it
// (objstoretest.RunCLI); then a name and a bucket that are not there.
func TestCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, s := newCLI(t, e)
	objstoretest.RunCLI(t, c, s)

	clitest.FailsWith(t, c.Run(t, "inspect", "--quiet", "s3:"+e.bucket+"/ci/:nope"), "ci/manifests/nope", "does not exist")
	clitest.FailsWith(t, c.Run(t, "copy", "--quiet", "s3:no-such-bucket", "oci:"+filepath.Join(t.TempDir(), "x")), "no-such-bucket")
}

// prune on an s3: location (objstoretest.RunCLIPrune).
func TestCLIPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, s := newCLI(t, e)
	objstoretest.RunCLIPrune(t, c, s)
}
