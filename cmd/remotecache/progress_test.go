package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	pkgerrors "github.com/pkg/errors"
)

func event(id string, total, current int64, done bool) remotecache.Event {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e := remotecache.Event{ID: id, Started: start, Total: total, Current: current}
	if done {
		e.Completed = start.Add(1500 * time.Millisecond)
	}
	return e
}

const layerID = "writing layer sha256:2f1e915ac5a53cb4a17ffc512c9e7248f63ae51f02cc6c083a1ce16ba39d5521"

// steps sends the events of a small export: a layer written, a config
// with a warning, a layer skipped and a step that failed.
func steps(sink remotecache.ProgressSink) {
	sink.Progress(event(layerID, 2048, 0, false))
	sink.Progress(event(layerID, 2048, 1024, false))
	warn := event("writing config sha256:x", 10, 0, false)
	warn.Warning = "too big"
	sink.Progress(warn)
	warn.Completed = warn.Started.Add(time.Millisecond)
	sink.Progress(warn)
	sink.Progress(event(layerID, 2048, 2048, true))
	skipped := event("writing layer sha256:y", 5, 0, true)
	skipped.Skipped = true
	sink.Progress(skipped)
	mounted := event("writing layer sha256:z", 5, 0, true)
	mounted.Skipped, mounted.Detail = true, "mounted from registry.example.com/team/app"
	sink.Progress(mounted)
	failed := event("tagging oci:d:latest", 0, 0, true)
	failed.Err = errors.New("boom")
	sink.Progress(failed)
}

// showSteps shows steps as a cli in mode does, and returns the cli and
// what it wrote.
func showSteps(mode progressMode) (*cli, *strings.Builder) {
	out := &strings.Builder{}
	c := &cli{stderr: out, mode: mode}
	sink, stop := c.progress(plan{})
	steps(sink)
	stop(true)
	return c, out
}

func TestLineProgress(t *testing.T) {
	c, out := showSteps(progressPlain)
	want := layerID + " (2.0 KiB)\n" +
		"writing config sha256:x: warning: too big\n" +
		"writing config sha256:x (10 B)\n" +
		"writing config sha256:x: done, 10 B in 1ms\n" +
		layerID + ": done, 2.0 KiB in 1.5s\n" +
		"writing layer sha256:y: skipped\n" +
		"writing layer sha256:z: skipped (mounted from registry.example.com/team/app)\n" +
		"tagging oci:d:latest: failed after 1.5s\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	c.mode = progressQuiet
	if sink, _ := c.progress(plan{}); sink != nil {
		t.Errorf("--quiet gives a sink")
	}
}

func TestJSONProgress(t *testing.T) {
	c, out := showSteps(progressJSON)
	c.note("waiting")
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var e jsonEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if e.Time.IsZero() || (e.Status != "note" && e.Started == nil) {
			t.Errorf("no time: %s", line)
		}
		s := e.Status + " " + e.ID
		if e.Digest != "" {
			s += " " + string(e.Digest)
		}
		if e.Warning != "" {
			s += " warning=" + e.Warning
		}
		if e.Error != "" {
			s += " error=" + e.Error
		}
		if e.Message != "" {
			s += " message=" + e.Message
		}
		if e.Detail != "" {
			s += " detail=" + e.Detail
		}
		got = append(got, s)
	}
	want := []string{
		"started " + layerID + " sha256:2f1e915ac5a53cb4a17ffc512c9e7248f63ae51f02cc6c083a1ce16ba39d5521",
		"progress " + layerID + " sha256:2f1e915ac5a53cb4a17ffc512c9e7248f63ae51f02cc6c083a1ce16ba39d5521",
		"started writing config sha256:x warning=too big", // not a valid digest: none given
		"done writing config sha256:x warning=too big",
		"done " + layerID + " sha256:2f1e915ac5a53cb4a17ffc512c9e7248f63ae51f02cc6c083a1ce16ba39d5521",
		"skipped writing layer sha256:y",
		"skipped writing layer sha256:z detail=mounted from registry.example.com/team/app",
		"failed tagging oci:d:latest error=boom",
		"note  message=waiting",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var overallBar = regexp.MustCompile(`^blobs (\d+)/(\d+) +\[[=> ]+\] `)

// The bars, drawn into a buffer as --progress=tty draws them on a pipe: an
// overall bar, a bar for the step in flight, and at the end the overall
// bar alone, complete, and the cursor shown again.
func TestBarProgress(t *testing.T) {
	var out cachetest.SyncBuffer
	c := &cli{stderr: &out, mode: progressTTY}
	sink, stop := c.progress(plan{blobs: 3, bytes: 4096})
	sink.Progress(event(layerID, 2048, 0, false))
	sink.Progress(event("importing oci:"+strings.Repeat("long/", 30), 0, 0, false))
	sink.Progress(event(layerID, 2048, 1024, false))
	// Long enough for the bars of the steps in flight to be drawn.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "writing layer sha256:2f1e915ac5a5 ") || !strings.Contains(out.String(), "1.0 KiB / 2.0 KiB") {
		if time.Now().After(deadline) {
			t.Fatalf("no bar for the step in flight after 10s:\n%q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	warn := event("writing config sha256:x", 10, 0, false)
	warn.Warning = "too big"
	sink.Progress(warn)
	sink.Progress(event(layerID, 2048, 2048, true))
	warn.Completed = warn.Started.Add(time.Millisecond)
	sink.Progress(warn)
	skipped := event("writing layer sha256:y", 5, 0, true)
	skipped.Skipped = true
	sink.Progress(skipped)
	stop(true)
	stop(true)

	s := newScreen(out.String())
	if len(s.unexpected) > 0 {
		t.Errorf("escape sequences the bars should not need: %q", s.unexpected)
	}
	inFlight := false
	for _, f := range s.frames {
		if len(f) > 0 && overallBar.MatchString(f[0]) && strings.Contains(strings.Join(f, "\n"), "writing layer sha256:2f1e915ac5a5  ") {
			inFlight = true
		}
		for _, l := range f {
			if len([]rune(l)) > 80 {
				t.Errorf("a line wider than 80 columns: %q", l)
			}
		}
	}
	if !inFlight {
		t.Errorf("no frame with the overall bar and the step in flight:\n%q", out.String())
	}
	lines := strings.Split(strings.TrimSuffix(s.text(), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "writing config sha256:x: warning: too big" {
		t.Fatalf("the screen at the end:\n%s", s.text())
	}
	m := overallBar.FindStringSubmatch(lines[1])
	if m == nil || m[1] != "3" || m[2] != "3" || !strings.Contains(lines[1], "2.0 KiB / 2.0 KiB") || !strings.Contains(lines[1], "done in") {
		t.Errorf("the overall bar at the end: %q", lines[1])
	}
	if !s.cursorOn {
		t.Errorf("the cursor is hidden at the end")
	}
}

func TestOverallText(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	o := &overallState{start: start}
	o.bytes.Store(10 << 20)
	if got, want := o.text(start), "0 B / 10.0 MiB  ETA --"; got != want {
		t.Errorf("at the start: %q, want %q", got, want)
	}
	o.bytesDone.Store(4 << 20)
	o.written.Store(2 << 20)
	if got, want := o.text(start.Add(2*time.Second)), "4.0 MiB / 10.0 MiB  1.0 MiB/s  ETA 6s"; got != want {
		t.Errorf("on the way: %q, want %q", got, want)
	}
	o.bytesDone.Store(10 << 20)
	o.took.Store(int64(3 * time.Second))
	if got, want := o.text(start.Add(time.Hour)), "10.0 MiB / 10.0 MiB  682.7 KiB/s  done in 3s"; got != want {
		t.Errorf("at the end: %q, want %q", got, want)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 2 << 40: "2.0 TiB", 4096 << 40: "4096.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFailuresLine(t *testing.T) {
	var f failures
	wrap := pkgerrors.Wrap
	refused := errors.New("connection refused")
	f.add(wrap(wrap(refused, "pushing blob sha256:a"), "writing layer sha256:a"))
	f.add(wrap(wrap(refused, "pushing blob sha256:b"), "writing layer sha256:b"))
	f.add(wrap(context.Canceled, "writing layer sha256:c"))
	f.add(wrap(errors.New("permission denied"), "writing layer sha256:d"))
	main := wrap(wrap(wrap(refused, "pushing blob sha256:a"), "writing layer sha256:a"), "registry:h/r:latest")
	got := f.line(main)
	want := "registry:h/r:latest: writing layer sha256:a: pushing blob sha256:a: connection refused; 1 more failed the same way; and writing layer sha256:d: permission denied"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
