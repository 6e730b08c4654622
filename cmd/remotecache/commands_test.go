package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/buildcache/remotecache/internal/cachetest"
)

// copyJSON runs a command with --json, which must exit 0, and decodes its
// result.
func copyJSON(t *testing.T, args ...string) exportResult {
	t.Helper()
	r := ok(t, append(args, "--json")...)
	var res exportResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, r.Stdout)
	}
	return res
}

func TestCopyJSON(t *testing.T) {
	src := cachetest.Fixture(t)
	dst := "oci:" + filepath.Join(t.TempDir(), "cache") + ":v1"
	res := copyJSON(t, "copy", "--quiet", "oci:"+src, dst)
	blobs := cachetest.FixtureBlobs + 2 // layers, config, manifest
	if res.Destination != dst || res.Format != "image-manifest" || res.Manifest.Digest != cachetest.FixtureManifest ||
		res.Blobs != blobs || res.Written != blobs || res.Skipped != 0 || res.BytesSkipped != 0 {
		t.Errorf("first copy: %+v", res)
	}
	rep := inspectJSON(t, dst)
	if res.BytesWritten != rep.TotalBytes || res.Manifest.Size != rep.Manifest.Size {
		t.Errorf("first copy wrote %d bytes, manifest of %d; inspect says %d in all, manifest of %d", res.BytesWritten, res.Manifest.Size, rep.TotalBytes, rep.Manifest.Size)
	}
	again := copyJSON(t, "copy", "oci:"+src, dst, "--progress=quiet")
	if again.Blobs != blobs || again.Skipped != blobs || again.Written != 0 || again.BytesSkipped != res.BytesWritten || again.Manifest.Digest != res.Manifest.Digest {
		t.Errorf("second copy: %+v", again)
	}

	merged := copyJSON(t, "merge", "-q", "oci:"+src, "oci:"+exportSmall(t), "oci:"+filepath.Join(t.TempDir(), "merged"), "--format=oci-index")
	if merged.Format != "oci-index" || merged.Blobs != blobs+2 || merged.Written != blobs+2 || !strings.HasSuffix(merged.Destination, "/merged:latest") {
		t.Errorf("merge: %+v", merged)
	}
}

// Each --progress mode, on stderr, with nothing but the result on stdout.
func TestProgressModes(t *testing.T) {
	src := "oci:" + cachetest.Fixture(t)
	dst := func() string { return "oci:" + filepath.Join(t.TempDir(), "cache") }
	stdout := regexp.MustCompile(`^oci:\S+:latest sha256:[0-9a-f]{64} image-manifest\n$`)

	r := ok(t, "copy", src, dst(), "--progress=plain")
	if !stdout.MatchString(r.Stdout) || strings.Contains(r.Stderr, "\x1b") ||
		!strings.Contains(r.Stderr, "writing layer sha256:") || !strings.Contains(r.Stderr, "writing manifest sha256:") {
		t.Errorf("plain:\nstdout %q\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if !regexp.MustCompile(`^(importing|writing layer|writing config|writing manifest|tagging) `).MatchString(line) {
			t.Errorf("plain: a line that is no step's: %q", line)
		}
	}

	r = ok(t, "copy", src, dst(), "--progress=json")
	if !stdout.MatchString(r.Stdout) {
		t.Errorf("json: stdout %q", r.Stdout)
	}
	statuses := map[string]int{}
	blobs := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		var e jsonEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("json: %v: %q", err, line)
		}
		statuses[e.Status]++
		if e.Status == "done" && e.Digest != "" {
			blobs[string(e.Digest)] = true
		}
	}
	if statuses["started"] == 0 || statuses["done"] != len(blobs)+2 || len(blobs) != cachetest.FixtureBlobs+2 || statuses["failed"] != 0 {
		t.Errorf("json: statuses %v, %d blobs done", statuses, len(blobs))
	}

	for _, quiet := range [][]string{{"--progress=quiet"}, {"--quiet"}, {"-q"}, {"--progress", "quiet", "--quiet"}} {
		if r := ok(t, append([]string{"copy", src, dst()}, quiet...)...); r.Stderr != "" || !stdout.MatchString(r.Stdout) {
			t.Errorf("%v: stdout %q, stderr %q", quiet, r.Stdout, r.Stderr)
		}
	}

	// Bars, even on a pipe: at the end, the overall bar alone.
	r = ok(t, "copy", src, dst(), "--progress=tty")
	s := newScreen(r.Stderr)
	if !stdout.MatchString(r.Stdout) || !strings.Contains(r.Stderr, hideCursor) || !s.cursorOn {
		t.Errorf("tty: stdout %q, stderr:\n%q", r.Stdout, r.Stderr)
	}
	if m := overallBar.FindStringSubmatch(strings.TrimSpace(s.text())); m == nil || m[1] != m[2] || strings.Contains(s.text(), "writing") {
		t.Errorf("tty: the screen at the end:\n%s", s.text())
	}
}

func TestVersion(t *testing.T) {
	r := ok(t, "version")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if !regexp.MustCompile(`^remotecache version \S+$`).MatchString(lines[0]) ||
		!strings.Contains(r.Stdout, "\nlibrary: github.com/buildcache/remotecache ") || !strings.Contains(r.Stdout, "\ngo: go1.") {
		t.Errorf("version:\n%s", r.Stdout)
	}
	for _, flag := range []string{"--version", "-v"} {
		if v := ok(t, flag); v.Stdout != lines[0]+"\n" {
			t.Errorf("%s: %q, want %q", flag, v.Stdout, lines[0])
		}
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "complete -o default -F __start_remotecache remotecache",
		"zsh":        "#compdef remotecache",
		"fish":       "complete -c remotecache",
		"powershell": "Register-ArgumentCompleter",
	} {
		if r := ok(t, "completion", shell); !strings.Contains(r.Stdout, want) || r.Stderr != "" {
			t.Errorf("completion %s does not have %q:\n%.300s", shell, want, r.Stdout)
		}
	}
	// What the scripts ask the tool for.
	for args, want := range map[string][]string{
		"copy ":             {"oci:", "registry:", "s3:", "azblob:"},
		"copy r":            {"registry:"},
		"copy --progress ":  {"auto", "tty", "plain", "json", "quiet"},
		"copy --format ":    {"image-manifest", "oci-index", "manifest-list", "config-only"},
		"completion ":       {"bash", "zsh", "fish", "powershell"},
		"":                  {"copy", "inspect", "verify", "prune", "merge", "version", "completion"},
		"help ":             {"copy", "prune"},
		"inspect oci:a --j": {"--json"},
	} {
		words := strings.Fields(args)
		if strings.HasSuffix(args, " ") || args == "" {
			words = append(words, "")
		}
		r := ok(t, append([]string{"__complete"}, words...)...)
		for _, w := range want {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(w) + `(\t|$)`).MatchString(r.Stdout) {
				t.Errorf("completing %q: no %q in:\n%s", args, w, r.Stdout)
			}
		}
	}
}

// --help on every command exits 0 with its usage and description on
// stdout.
func TestHelpEveryCommand(t *testing.T) {
	names := []string{"help"}
	for _, cmd := range toolCommands() {
		names = append(names, cmd.Name())
	}
	for _, name := range names {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			r := ok(t, args...)
			if !strings.HasPrefix(r.Stdout, "usage: remotecache "+name) || r.Stderr != "" || !strings.Contains(r.Stdout, "\nFlags:\n") {
				t.Errorf("%v: stdout:\n%s\nstderr:\n%s", args, r.Stdout, r.Stderr)
			}
		}
	}
	for _, name := range []string{"copy", "inspect", "verify", "prune", "merge"} {
		if r := ok(t, name, "--help"); !strings.Contains(r.Stdout, "Locations:\n  oci:DIR[:TAG]") || !strings.Contains(r.Stdout, "s3:BUCKET[/PREFIX][:NAME]") || !strings.Contains(r.Stdout, "azblob:CONTAINER[/PREFIX][:NAME]") {
			t.Errorf("%s --help does not describe the locations:\n%s", name, r.Stdout)
		}
	}
}
