// Package clitest builds the remotecache command and runs it as a user
// would, for the end-to-end tests of cmd/remotecache and of
// registry/regtest, and gives them the BuildKit cache in testdata to run
// it on. It is for tests only.
package clitest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The BuildKit cache in testdata (testdata/buildkit-local-cache, which a
// real buildkitd wrote with type=local).
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
		return "", fmt.Errorf("clitest: finding the root module: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
})

// Root returns the directory of the root module,
// github.com/buildcache/remotecache, as the go command of the calling
// module sees it (replaced by the local tree in the test modules).
func Root() (string, error) { return root() }

// Build builds the remotecache command into dir and returns the path of
// the binary. It is built in the root module, whose go.mod is the one a
// user builds with, whichever module the test is in.
func Build(dir string) (string, error) {
	r, err := Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "remotecache")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/buildcache/remotecache/cmd/remotecache")
	cmd.Dir = r
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build github.com/buildcache/remotecache/cmd/remotecache: %w\n%s", err, out)
	}
	return bin, nil
}

// Fixture copies the BuildKit cache in testdata into a new directory of
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

// Result is what one run of the command did.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs the command bin with args. A run that exits with any code is a
// Result; one that cannot run fails the test.
func Run(t testing.TB, bin string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		t.Fatalf("remotecache %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// OK runs the command and fails the test unless it exits 0.
func OK(t testing.TB, bin string, args ...string) Result {
	t.Helper()
	r := Run(t, bin, args...)
	if r.Code != 0 {
		t.Fatalf("remotecache %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// FailsWith checks that r failed as the command fails: exit code 1 and one
// line on stderr (the command ran with --quiet, or printed no progress),
// "remotecache: …", which says each of want.
func FailsWith(t testing.TB, r Result, want ...string) {
	t.Helper()
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	line := strings.TrimSuffix(r.Stderr, "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "remotecache: ") {
		t.Fatalf("stderr is not one line starting with \"remotecache: \":\n%s", r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("stderr does not say %q:\n%s", w, r.Stderr)
		}
	}
}
