package cachetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pkg/errors"
)

// The BuildKit cache in testdata/buildkit-local-cache, which a real
// buildkitd wrote (--export-cache type=local).
const (
	// FixtureManifest is the digest of its manifest, which an
	// image-manifest copy of it reproduces byte for byte.
	FixtureManifest = "sha256:5bbdd4698405bbfd20d0e147af898c13cf647d33b7e74b156c91f3cd560556bd"
	// FixtureRecords, FixtureLayers and FixtureBlobs are how many
	// records, layers and distinct blobs its config has.
	FixtureRecords, FixtureLayers, FixtureBlobs = 11, 8, 8
)

var root = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/buildcache/remotecache").Output()
	if err != nil {
		return "", errors.Wrap(err, "cachetest: finding the root module")
	}
	return strings.TrimSpace(string(out)), nil
})

// Root returns the directory of the root module,
// github.com/buildcache/remotecache, as the go command of the calling
// test's module sees it (the local tree, by a replace directive, in the
// test modules). It works with -trimpath too.
func Root() (string, error) { return root() }

// Fixture copies the BuildKit cache of testdata into a new directory of
// t and returns its path, so that no test ever writes into testdata.
func Fixture(t testing.TB) string {
	t.Helper()
	r, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "fixture")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(r, "testdata", "buildkit-local-cache"))); err != nil {
		t.Fatal(err)
	}
	return dir
}
