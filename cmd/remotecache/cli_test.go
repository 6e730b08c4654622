package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want location // zero: an error
	}{
		{"oci:dir", location{scheme: "oci", path: "dir", tag: "latest"}},
		{"oci:/a/b:v1.2_x-y", location{scheme: "oci", path: "/a/b", tag: "v1.2_x-y"}},
		{"oci:./a:b/c", location{scheme: "oci", path: "./a:b/c", tag: "latest"}},
		{"oci:a:b/c:t", location{scheme: "oci", path: "a:b/c", tag: "t"}},
		{"registry:localhost:5000/cache", location{scheme: "registry", path: "localhost:5000/cache", tag: "latest"}},
		{"registry:localhost:5000/a/b:v1", location{scheme: "registry", path: "localhost:5000/a/b", tag: "v1"}},
		{"registry:ghcr.io/o/r:main", location{scheme: "registry", path: "ghcr.io/o/r", tag: "main"}},
		{"dir", location{}},
		{"tar:dir", location{}},
		{"oci:", location{}},
		{"oci::t", location{}},
		{"oci:dir:", location{}},
		{"oci:dir:.t", location{}},
		{"oci:dir:a b", location{}},
		{"oci:dir:" + strings.Repeat("t", 128), location{scheme: "oci", path: "dir", tag: strings.Repeat("t", 128)}},
		{"oci:dir:" + strings.Repeat("t", 129), location{}},
		{"registry:", location{}},
		{"registry:host", location{}},
		{"registry:host/", location{}},
		{"registry:/repo", location{}},
		{"registry:host/repo@sha256:abc", location{}},

		// An object store: BUCKET[/PREFIX][:NAME], the prefix as it is.
		{"s3:bucket", location{scheme: "s3", path: "bucket", tag: "buildkit"}},
		{"s3:my.bucket-1", location{scheme: "s3", path: "my.bucket-1", tag: "buildkit"}},
		{"s3:bucket/ci/", location{scheme: "s3", path: "bucket", prefix: "ci/", tag: "buildkit"}},
		{"s3:bucket/ci", location{scheme: "s3", path: "bucket", prefix: "ci", tag: "buildkit"}},
		{"s3:bucket/a/b/", location{scheme: "s3", path: "bucket", prefix: "a/b/", tag: "buildkit"}},
		{"s3:bucket:main", location{scheme: "s3", path: "bucket", tag: "main"}},
		{"s3:bucket/ci/:main", location{scheme: "s3", path: "bucket", prefix: "ci/", tag: "main"}},
		{"s3:bucket/ci/:a;b", location{scheme: "s3", path: "bucket", prefix: "ci/", tag: "a;b"}},
		{"s3:bucket:pr-42.x_y", location{scheme: "s3", path: "bucket", tag: "pr-42.x_y"}},
		{"s3:bucket/a:b/c", location{scheme: "s3", path: "bucket", prefix: "a:b/c", tag: "buildkit"}},
		{"s3:", location{}},
		{"s3:/ci/", location{}},
		{"s3::main", location{}},
		{"s3:bucket:", location{}},
		{"s3:bucket:a;;b", location{}},
		{"s3:bucket:;a", location{}},
		{"s3:buck et", location{}},
		{"s3:-bucket", location{}},
		{"azblob:cache", location{scheme: "azblob", path: "cache", tag: "buildkit"}},
		{"azblob:cache/ci", location{scheme: "azblob", path: "cache", prefix: "ci", tag: "buildkit"}},
		{"azblob:cache/ci/:main;pr-1", location{scheme: "azblob", path: "cache", prefix: "ci/", tag: "main;pr-1"}},
		{"azblob:", location{}},
		{"azblob:/ci", location{}},
		{"azblob:cache:", location{}},
		{"azblob:cache:a;", location{}},
	} {
		got, err := parseLocation(tc.in)
		if (err != nil) != (tc.want == location{}) || got != tc.want {
			t.Errorf("parseLocation(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err == nil {
			if back, err := parseLocation(got.String()); err != nil || back != got {
				t.Errorf("parseLocation(%q) = %+v, %v: String() %q does not parse back", tc.in, back, err, got.String())
			}
		}
	}
	for l, want := range map[location]string{
		{scheme: "oci", path: "/a", tag: "t"}:                             "oci:/a:t",
		{scheme: "s3", path: "b", tag: "buildkit"}:                        "s3:b:buildkit",
		{scheme: "s3", path: "b", prefix: "ci/", tag: "a;b"}:              "s3:b/ci/:a;b",
		{scheme: "registry", path: "localhost:5000/r", tag: defaultTag}:   "registry:localhost:5000/r:latest",
		{scheme: "s3", path: "b", prefix: "x", tag: defaultName}:          "s3:b/x:buildkit",
		{scheme: "oci", path: "a:b/c", tag: "latest"}:                     "oci:a:b/c:latest",
		{scheme: "s3", path: "bucket", prefix: "a:b/c", tag: defaultName}: "s3:bucket/a:b/c:buildkit",
		{scheme: "azblob", path: "c", prefix: "ci", tag: "a;b"}:           "azblob:c/ci:a;b",
	} {
		if s := l.String(); s != want {
			t.Errorf("%+v.String() = %q, want %q", l, s, want)
		}
	}
	if got := (location{scheme: "s3", tag: "a;b"}).names(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("names() = %q", got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "5GB": 5e9, "5gb": 5e9, "5G": 5e9, "1.5MB": 1.5e6, "2GiB": 2 << 30, "512 KiB": 512 << 10,
		"10B": 10, "3tb": 3e12, "1TiB": 1 << 40, "2.5k": 2500,
		"": -1, "GB": -1, "5XB": -1, "-1": -1, "1e9": -1, "5 G B": -1, "99999999999TB": -1,
	} {
		got, err := parseSize(in)
		if (err != nil) != (want < 0) || (err == nil && got != want) {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"720h": 720 * time.Hour, "90m": 90 * time.Minute, "30d": 30 * 24 * time.Hour, "1.5d": 36 * time.Hour, "1h30m": 90 * time.Minute,
		"": -1, "d": -1, "soon": -1, "1w": -1,
	} {
		got, err := parseAge(in)
		if (err != nil) != (want < 0) || (err == nil && got != want) {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// runCLI runs the tool in process, as main does, and returns its exit
// status and output.
func runCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	c := &cli{stdout: &out, stderr: &errOut}
	code = c.run(ctx, args)
	return code, out.String(), errOut.String()
}

// Flags may come before, between or after the arguments; after "--",
// everything is an argument.
func TestFlagsAnywhere(t *testing.T) {
	ctx := context.Background()
	src := "oci:../../testdata/buildkit-local-cache"
	for _, args := range [][]string{
		{"--quiet", "inspect", src, "--json"},
		{"inspect", "--json", src, "-q"},
		{"inspect", src, "--progress=quiet", "--json"},
		{"--progress", "quiet", "inspect", "--json", "--", src},
	} {
		code, stdout, stderr := runCLI(ctx, args...)
		if code != 0 || !strings.HasPrefix(stdout, "{\n") || stderr != "" {
			t.Errorf("%q: exit %d\nstdout:\n%.200s\nstderr:\n%s", args, code, stdout, stderr)
		}
	}
	// After "--", a flag is an argument: inspect gets two.
	if code, _, stderr := runCLI(ctx, "inspect", src, "--", "--json"); code != 2 || !strings.Contains(stderr, "wrong number of arguments (2)") {
		t.Errorf("after --: exit %d, stderr %q", code, stderr)
	}
}

// TestExitCodes runs the commands in process, for what the end-to-end
// tests cannot reach cheaply.
func TestExitCodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context is a failure, not bad usage.
	code, _, stderr := runCLI(ctx, "copy", "--quiet", "oci:../../testdata/buildkit-local-cache", "oci:"+filepath.Join(t.TempDir(), "x"))
	if code != 1 {
		t.Errorf("cancelled copy: exit %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stderr, "remotecache: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q", stderr)
	}
}

// The modes of --progress, and --quiet, in process.
func TestChooseProgress(t *testing.T) {
	for _, tc := range []struct {
		flag  string
		quiet bool
		tty   bool
		want  progressMode // "": bad usage
	}{
		{"auto", false, false, progressPlain},
		{"auto", false, true, progressTTY},
		{"tty", false, false, progressTTY},
		{"plain", false, true, progressPlain},
		{"json", false, true, progressJSON},
		{"quiet", false, true, progressQuiet},
		{"auto", true, true, progressQuiet},
		{"quiet", true, false, progressQuiet},
		{"json", true, false, ""},
		{"bars", false, false, ""},
	} {
		c := &cli{progressFlag: tc.flag, quiet: tc.quiet, tty: tc.tty}
		err := c.chooseProgress()
		if _, usage := asUsageError(err); (tc.want == "" && !usage) || (tc.want != "" && (err != nil || c.mode != tc.want)) {
			t.Errorf("--progress=%s --quiet=%v tty=%v: mode %q, %v; want %q", tc.flag, tc.quiet, tc.tty, c.mode, err, tc.want)
		}
	}
}

// The tool's own commands, as the root command has them (not help).
func toolCommands() []*cobra.Command {
	var cmds []*cobra.Command
	for _, cmd := range (&cli{}).rootCommand().Commands() {
		if cmd.Name() != "help" {
			cmds = append(cmds, cmd)
		}
	}
	return cmds
}

// TestREADMESynopsis keeps the synopsis in README.md's "Command line"
// section the same as the tool's.
func TestREADMESynopsis(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range toolCommands() {
		if line := "\nremotecache " + cmd.Use + "\n"; !strings.Contains(string(readme), line) {
			t.Errorf("README.md does not give the synopsis%s", line)
		}
	}
}
