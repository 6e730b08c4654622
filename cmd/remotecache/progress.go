package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/buildcache/remotecache"
)

// progress returns the sink that shows the progress of an export on
// stderr (nil with --quiet) and a function that writes out what is
// pending; call it before writing anything else. On a terminal, steps in
// progress are bars redrawn in place; otherwise each step is a line when
// it starts and one when it ends.
func (c *cli) progress() (remotecache.ProgressSink, func()) {
	switch {
	case c.quiet:
		return nil, func() {}
	case c.tty:
		p := &barProgress{w: c.stderr, warned: map[string]bool{}}
		return p, p.flush
	default:
		p := &lineProgress{w: c.stderr, started: map[string]bool{}, warned: map[string]bool{}}
		return p, func() {}
	}
}

// lineProgress writes plain lines, for logs.
type lineProgress struct {
	mu      sync.Mutex
	w       io.Writer
	started map[string]bool // steps whose start was written
	warned  map[string]bool // steps whose warning was written
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

// barProgress draws the steps in progress as bars at the bottom of a
// terminal, and each completed step as a line above them that stays.
// Only the steps in progress are redrawn, so there are never more lines to
// move over than steps running at once.
type barProgress struct {
	mu      sync.Mutex
	w       io.Writer
	active  []remotecache.Event // steps in progress, in the order they started
	pending []string            // lines to write above the bars
	warned  map[string]bool
	drawn   int // lines of bars on the screen
	last    time.Time
}

const (
	redrawEvery = 100 * time.Millisecond
	lineWidth   = 79 // a line that wraps would break the redraw
	barWidth    = 18
)

func (p *barProgress) Progress(e remotecache.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Warning != "" && !p.warned[e.ID] {
		p.warned[e.ID] = true
		p.pending = append(p.pending, fmt.Sprintf("%s: warning: %s", e.ID, e.Warning))
	}
	i := 0
	for i < len(p.active) && p.active[i].ID != e.ID {
		i++
	}
	switch {
	case !e.Completed.IsZero():
		if i < len(p.active) {
			p.active = append(p.active[:i], p.active[i+1:]...)
		}
		p.pending = append(p.pending, shortDigest(endLine(e)))
	case i == len(p.active):
		p.active = append(p.active, e)
	default:
		p.active[i] = e
		if time.Since(p.last) < redrawEvery {
			return
		}
	}
	p.draw()
}

// flush draws what is pending; later output goes below it.
func (p *barProgress) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
	p.drawn = 0
}

func (p *barProgress) draw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", p.drawn) // up over the bars, clear to the end
	}
	for _, l := range p.pending {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	p.pending = p.pending[:0]
	now := time.Now()
	for _, e := range p.active {
		b.WriteString(barLine(e, now))
		b.WriteByte('\n')
	}
	p.drawn = len(p.active)
	p.last = now
	io.WriteString(p.w, b.String())
}

// barLine is a step in progress as one line: its name with digests
// shortened, and a bar of bytes done, or the time taken so far.
func barLine(e remotecache.Event, now time.Time) string {
	name := shortDigest(e.ID)
	var line string
	if e.Total > 0 {
		done := int(float64(barWidth) * float64(min(e.Current, e.Total)) / float64(e.Total))
		bar := strings.Repeat("=", done) + strings.Repeat(" ", barWidth-done)
		line = fmt.Sprintf("%-34s [%s] %s / %s", name, bar, humanBytes(e.Current), humanBytes(e.Total))
	} else {
		line = fmt.Sprintf("%-34s %s", name, now.Sub(e.Started).Round(100*time.Millisecond))
	}
	if r := []rune(line); len(r) > lineWidth {
		line = string(r[:lineWidth-1]) + "…"
	}
	return line
}
