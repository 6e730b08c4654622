//go:build unix

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/buildcache/remotecache/internal/cachetest"
)

// runInTerminal runs the binary with args on a pseudo-terminal of 100
// columns, as a person at a terminal runs it, and returns its exit code
// and everything it wrote there (stdout and stderr both).
func runInTerminal(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&out, tty) // ends with an error once the command has gone
		close(copied)
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Log("the terminal's output did not end 10s after the command")
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

// On a terminal, a copy draws an overall bar and a bar for each blob in
// flight, and ends with nothing on the screen but the overall bar,
// complete, and the result; the cursor is shown again.
func TestCopyInTerminal(t *testing.T) {
	host, reg := startRegistry(t)
	src := "registry:" + host + "/slow:v1"
	ok(t, "copy", "--quiet", "oci:"+cachetest.Fixture(t), src)
	// Slow enough for the blobs in flight to get their bars.
	reg.blobDelay.Store(int64(700 * time.Millisecond))

	dst := "oci:" + filepath.Join(t.TempDir(), "cache")
	code, out := runInTerminal(t, "copy", src, dst)
	if code != 0 {
		t.Fatalf("exit %d:\n%q", code, out)
	}
	s := newScreen(out)
	if len(s.unexpected) > 0 {
		t.Errorf("escape sequences the bars should not need: %q", s.unexpected)
	}
	overall, inFlight := false, false
	for _, f := range s.allFrames() {
		for i, l := range f {
			if overallBar.MatchString(l) {
				overall = true
				for _, below := range f[i+1:] {
					inFlight = inFlight || strings.HasPrefix(below, "writing layer sha256:") && strings.Contains(below, "[")
				}
			}
		}
	}
	if !overall || !inFlight {
		t.Errorf("overall bar %v, a blob in flight below it %v, in:\n%q", overall, inFlight, out)
	}
	lines := strings.Split(strings.TrimRight(s.text(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("the screen at the end is not the overall bar and the result:\n%s", s.text())
	}
	want := cachetest.FixtureBlobs + 2 // and the config and the manifest
	if m := overallBar.FindStringSubmatch(lines[0]); m == nil || m[1] != m[2] || m[1] != strconv.Itoa(want) || !strings.Contains(lines[0], "done in") {
		t.Errorf("the overall bar at the end: %q, want %d/%d blobs done", lines[0], want, want)
	}
	if !strings.HasPrefix(lines[1], dst+":latest "+cachetest.FixtureManifest+" image-manifest") {
		t.Errorf("the result: %q", lines[1])
	}
	if !s.cursorOn || !strings.Contains(out, hideCursor) {
		t.Errorf("the cursor was not hidden while the bars were drawn, or is hidden at the end:\n%q", out)
	}

	// Plain lines when asked for, even on a terminal.
	code, out = runInTerminal(t, "copy", "--progress=plain", "oci:"+cachetest.Fixture(t), "oci:"+filepath.Join(t.TempDir(), "plain"))
	if code != 0 || strings.Contains(out, "\x1b[") || !strings.Contains(out, "writing layer sha256:") {
		t.Errorf("--progress=plain on a terminal: exit %d\n%q", code, out)
	}
}
