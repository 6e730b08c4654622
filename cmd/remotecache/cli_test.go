package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want location // zero: an error
	}{
		{"oci:dir", location{"oci", "dir", "latest"}},
		{"oci:/a/b:v1.2_x-y", location{"oci", "/a/b", "v1.2_x-y"}},
		{"oci:./a:b/c", location{"oci", "./a:b/c", "latest"}},
		{"oci:a:b/c:t", location{"oci", "a:b/c", "t"}},
		{"registry:localhost:5000/cache", location{"registry", "localhost:5000/cache", "latest"}},
		{"registry:localhost:5000/a/b:v1", location{"registry", "localhost:5000/a/b", "v1"}},
		{"registry:ghcr.io/o/r:main", location{"registry", "ghcr.io/o/r", "main"}},
		{"dir", location{}},
		{"tar:dir", location{}},
		{"oci:", location{}},
		{"oci::t", location{}},
		{"oci:dir:", location{}},
		{"oci:dir:.t", location{}},
		{"oci:dir:a b", location{}},
		{"oci:dir:" + strings.Repeat("t", 128), location{"oci", "dir", strings.Repeat("t", 128)}},
		{"oci:dir:" + strings.Repeat("t", 129), location{}},
		{"registry:", location{}},
		{"registry:host", location{}},
		{"registry:host/", location{}},
		{"registry:/repo", location{}},
		{"registry:host/repo@sha256:abc", location{}},
	} {
		got, err := parseLocation(tc.in)
		if (err != nil) != (tc.want == location{}) || got != tc.want {
			t.Errorf("parseLocation(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if s := (location{"oci", "/a", "t"}).String(); s != "oci:/a:t" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		pos        []string
		format     string
		quiet, err bool
	}{
		{args: []string{"a", "b"}, pos: []string{"a", "b"}},
		{args: []string{"a", "--format", "x", "b", "--quiet"}, pos: []string{"a", "b"}, format: "x", quiet: true},
		{args: []string{"--format=x", "a", "-quiet", "b"}, pos: []string{"a", "b"}, format: "x", quiet: true},
		{args: []string{"a", "--", "--quiet", "b"}, pos: []string{"a", "--quiet", "b"}},
		{args: []string{"a", "-", "b"}, pos: []string{"a", "-", "b"}},
		{args: []string{"a", "--nope"}, err: true},
		{args: []string{"a", "--format"}, err: true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		format := fs.String("format", "", "")
		quiet := fs.Bool("quiet", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v", tc.args, err)
			continue
		}
		if !tc.err && (!reflect.DeepEqual(pos, tc.pos) || *format != tc.format || *quiet != tc.quiet) {
			t.Errorf("%q: %q format %q quiet %v; want %q %q %v", tc.args, pos, *format, *quiet, tc.pos, tc.format, tc.quiet)
		}
	}
}

// TestExitCodes runs the commands in process, for what the end-to-end
// tests cannot reach cheaply.
func TestExitCodes(t *testing.T) {
	var stdout, stderr strings.Builder
	c := &cli{stdout: &stdout, stderr: &stderr}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context is a failure, not bad usage.
	if code := c.run(ctx, []string{"copy", "--quiet", "oci:../../testdata/buildkit-local-cache", "oci:" + filepath.Join(t.TempDir(), "x")}); code != 1 {
		t.Errorf("cancelled copy: exit %d, stderr %q", code, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "remotecache: ") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q", stderr.String())
	}
}

// TestREADMESynopsis keeps the synopsis in README.md's "Command line"
// section the same as the tool's.
func TestREADMESynopsis(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range commands {
		if line := "\nremotecache " + cmd.name + " " + cmd.args + "\n"; !strings.Contains(string(readme), line) {
			t.Errorf("README.md does not give the synopsis%s", line)
		}
	}
}
