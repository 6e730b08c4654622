package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/buildcache/remotecache"
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

func TestLineProgress(t *testing.T) {
	var out strings.Builder
	c := &cli{stderr: &out}
	sink, flush := c.progress()
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
	flush()
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
	c.quiet = true
	if sink, _ := c.progress(); sink != nil {
		t.Errorf("--quiet gives a sink")
	}
}

func TestBarProgress(t *testing.T) {
	var out strings.Builder
	c := &cli{stderr: &out, tty: true}
	sink, flush := c.progress()
	sink.Progress(event(layerID, 2048, 0, false))
	sink.Progress(event("importing oci:"+strings.Repeat("long/", 30), 0, 0, false))
	first := out.String()
	if !strings.Contains(first, "\x1b[1A\x1b[J") || !strings.Contains(first, "writing layer sha256:2f1e915ac5a5  [                  ] 0 B / 2.0 KiB\n") {
		t.Errorf("two steps started:\n%q", first)
	}
	for _, line := range strings.Split(first, "\n") {
		if n := len([]rune(strings.TrimPrefix(line, "\x1b[1A\x1b[J"))); n > lineWidth {
			t.Errorf("line of %d runes: %q", n, line)
		}
	}
	out.Reset()
	sink.Progress(event(layerID, 2048, 2048, true))
	if got, want := out.String(), "\x1b[2A\x1b[J"+shortDigest(layerID)+": done, 2.0 KiB in 1.5s\n"; !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 2 {
		t.Errorf("a step done:\n%q\nwant prefix\n%q", got, want)
	}
	out.Reset()
	flush()
	flush()
	if got := out.String(); strings.Count(got, "\x1b[1A\x1b[J") != 1 {
		t.Errorf("flush twice:\n%q", got)
	}
}

func TestBarLine(t *testing.T) {
	e := event(layerID, 1000, 500, false)
	if got, want := barLine(e, e.Started), "writing layer sha256:2f1e915ac5a5  [=========         ] 500 B / 1000 B"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	e = event("tagging oci:x:latest", 0, 0, false)
	if got, want := barLine(e, e.Started.Add(2*time.Second)), "tagging oci:x:latest               2s"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 2 << 40: "2.0 TiB", 4096 << 40: "4096.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
