package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/buildcache/remotecache"
)

// progressMode is how progress is shown on stderr, named as buildx names
// its modes.
type progressMode string

const (
	// progressAuto is progressTTY on a terminal, else progressPlain.
	progressAuto progressMode = "auto"
	// progressTTY draws an overall bar and a bar for each step in
	// flight, redrawn in place, even when stderr is not a terminal.
	progressTTY progressMode = "tty"
	// progressPlain writes a line when a step starts and one when it
	// ends, for logs.
	progressPlain progressMode = "plain"
	// progressJSON writes one JSON object per event, for machines.
	progressJSON progressMode = "json"
	// progressQuiet shows nothing.
	progressQuiet progressMode = "quiet"
)

var progressModes = []progressMode{progressAuto, progressTTY, progressPlain, progressJSON, progressQuiet}

func parseProgressMode(s string) (progressMode, error) {
	for _, m := range progressModes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", usagef("--progress=%s: want auto, tty, plain, json or quiet", s)
}

// plan is what an export is expected to write, for the overall bar: the
// distinct layer blobs of its sources, their config and manifest. It is a
// bound: results whose blobs are gone are not exported.
type plan struct {
	blobs int
	bytes int64
}

// progress starts showing progress in the mode the flags chose and
// returns the sink for it (nil with --quiet) and the function that stops
// it, saying whether what it showed succeeded. Call stop before writing
// anything else; calling it again does nothing.
func (c *cli) progress(p plan) (sink remotecache.ProgressSink, stop func(ok bool)) {
	var d interface {
		remotecache.ProgressSink
		stop(ok bool)
	}
	switch c.mode {
	case progressQuiet:
		return nil, func(bool) {}
	case progressTTY:
		d = newBarProgress(c.stderr, p)
	case progressJSON:
		d = newJSONProgress(c.stderr)
	default:
		d = newLineProgress(c.stderr)
	}
	var once sync.Once
	return d, func(ok bool) { once.Do(func() { d.stop(ok) }) }
}

// note tells the user something that is not a step of an export (a wait,
// say), as the progress mode writes it.
func (c *cli) note(msg string) {
	switch c.mode {
	case progressQuiet:
	case progressJSON:
		writeJSONLine(c.stderr, jsonEvent{Time: time.Now(), Status: "note", Message: msg})
	default:
		fmt.Fprintln(c.stderr, msg)
	}
}

// lineProgress writes plain lines, for logs.
type lineProgress struct {
	mu      sync.Mutex
	w       io.Writer
	started map[string]bool // steps whose start was written
	warned  map[string]bool // steps whose warning was written
}

func newLineProgress(w io.Writer) *lineProgress {
	return &lineProgress{w: w, started: map[string]bool{}, warned: map[string]bool{}}
}

func (p *lineProgress) Progress(e remotecache.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Warning != "" && !p.warned[e.ID] {
		p.warned[e.ID] = true
		fmt.Fprintf(p.w, "%s: warning: %s\n", e.ID, e.Warning)
	}
	if !e.Completed.IsZero() {
		fmt.Fprintln(p.w, endLine(e))
		return
	}
	if !p.started[e.ID] {
		p.started[e.ID] = true
		if e.Total > 0 {
			fmt.Fprintf(p.w, "%s (%s)\n", e.ID, humanBytes(e.Total))
		} else {
			fmt.Fprintln(p.w, e.ID)
		}
	}
}

func (p *lineProgress) stop(bool) {}

// endLine describes a completed step.
func endLine(e remotecache.Event) string {
	took := e.Completed.Sub(e.Started).Round(time.Millisecond)
	switch {
	case e.Err != nil:
		return fmt.Sprintf("%s: failed after %s", e.ID, took)
	case e.Skipped && e.Detail != "":
		return e.ID + ": skipped (" + e.Detail + ")"
	case e.Skipped:
		return e.ID + ": skipped"
	case e.Total > 0:
		return fmt.Sprintf("%s: done, %s in %s", e.ID, humanBytes(e.Total), took)
	default:
		return fmt.Sprintf("%s: done in %s", e.ID, took)
	}
}

// blobSteps are the prefixes of the IDs of the steps that write a blob,
// which the overall bar counts.
var blobSteps = []string{"writing layer ", "writing config ", "writing manifest "}

func isBlobStep(id string) bool {
	for _, p := range blobSteps {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}
