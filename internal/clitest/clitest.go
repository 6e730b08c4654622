// Package clitest builds the remotecache command and runs it as a user
// would, and reads its `inspect --json`, for the end-to-end tests of
// cmd/remotecache, of registry/regtest and of s3/s3test (which run it on
// cachetest.Fixture against the servers they start). It is for tests
// only.
package clitest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/cachetest"
)

// Build builds the remotecache command into dir and returns the path of
// the binary. It is built in its own module, cmd/remotecache of the local
// tree, with that module's go.mod (the one a user builds with), whichever
// module the test is in.
func Build(dir string) (string, error) {
	r, err := cachetest.Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "remotecache")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(r, "cmd", "remotecache")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", errors.Wrapf(err, "go build github.com/buildcache/remotecache/cmd/remotecache: %s", out)
	}
	return bin, nil
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
	return RunEnv(t, bin, nil, args...)
}

// RunEnv is Run with env added to the test's environment (each
// "KEY=value"; a later one wins), so that tests that run in parallel can
// each give the command settings of their own.
func RunEnv(t testing.TB, bin string, env []string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
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
	return OKEnv(t, bin, nil, args...)
}

// OKEnv is OK with env added to the test's environment, as for RunEnv.
func OKEnv(t testing.TB, bin string, env []string, args ...string) Result {
	t.Helper()
	r := RunEnv(t, bin, env, args...)
	if r.Code != 0 {
		t.Fatalf("remotecache %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// Report is the part of the JSON of `inspect --json` that the tests read.
type Report struct {
	Location string             `json:"location"`
	Format   string             `json:"format"`
	Manifest ocispec.Descriptor `json:"manifest"`
	Config   ocispec.Descriptor `json:"config"`
	Counts   struct {
		Records int `json:"records"`
		Layers  int `json:"layers"`
		Blobs   int `json:"blobs"`
		Missing int `json:"missing"`
	} `json:"counts"`
	TotalBytes int64 `json:"totalBytes"`
	Blobs      []struct {
		Digest  digest.Digest `json:"digest"`
		Size    int64         `json:"size"`
		Problem string        `json:"problem"`
	} `json:"blobs"`
}

// Inspect runs `inspect --json` on loc with env added to the test's
// environment (as for RunEnv), which must exit 0, and decodes its report.
func Inspect(t testing.TB, bin string, env []string, loc string) Report {
	t.Helper()
	out := OKEnv(t, bin, env, "inspect", loc, "--json").Stdout
	var r Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("inspect --json %s: %v\n%s", loc, err, out)
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
