package azbtest

import (
	"path"
	"testing"

	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// The command line tool end to end against Azurite: azblob: locations in
// copy, inspect, verify, merge, diff, trim, verify --repair and prune, in
// either direction and with oci: locations, configured as a user
// configures it, by $AZURE_STORAGE_CONNECTION_STRING.

// newCLI is the command with the environment that points it at one
// Azurite, through the test's proxy.
func newCLI(t *testing.T, e *env) (*objstoretest.CLI, objstoretest.CLIStore) {
	t.Helper()
	c := objstoretest.NewCLI(t, "AZURE_STORAGE_CONNECTION_STRING="+connectionString(e.proxy.URL))
	return c, objstoretest.CLIStore{
		Env: suiteEnv{e},
		// A prefix is a path, as BuildKit's azblob cache joins it: "ci"
		// is the directory ci/.
		Location: func(dir, names string) string {
			loc := "azblob:" + path.Join(e.container, dir)
			if names != "" {
				loc += ":" + names
			}
			return loc
		},
		What: "container",
	}
}

// TestCLI copies BuildKit's fixture into a container and back, checks it
// there, merges it with a layout, compares, trims and repairs it
// (objstoretest.RunCLI); then the tool still reads it, and without an
// account it says so.
func TestCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, s := newCLI(t, e)
	objstoretest.RunCLI(t, c, s)

	loc := s.Location("ci", "main")
	if r := c.Run(t, "inspect", "--quiet", loc); r.Code != 0 {
		t.Errorf("inspect after the failures: exit %d", r.Code)
	}
	noAccount := clitest.RunEnv(t, c.Bin, []string{"AZURE_STORAGE_CONNECTION_STRING="}, "inspect", "--quiet", loc)
	clitest.FailsWith(t, noAccount, "no storage account")
}

// prune on an azblob: location (objstoretest.RunCLIPrune).
func TestCLIPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, s := newCLI(t, e)
	objstoretest.RunCLIPrune(t, c, s)
}
