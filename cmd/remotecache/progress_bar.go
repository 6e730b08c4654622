package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buildcache/remotecache"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// barProgress draws, with mpb, one overall bar (blobs done of the total,
// bytes, throughput, time left) and below it a bar for each step in
// flight, removed when it ends. Nothing stays on the screen but warnings,
// written above the bars, and the overall bar's last frame.
//
// A step gets its bar only once it has been in flight for showAfter: a
// blob that is skipped, or written in a moment, would be drawn once done
// and then taken away, and a copy that skips a hundred blobs would flash
// a hundred lines.
//
// The decorators run on mpb's goroutines while Progress calls into mpb
// with mu held, so they read only atomics, never mu.
type barProgress struct {
	w io.Writer
	p *mpb.Progress

	mu       sync.Mutex
	bar      *mpb.Bar            // the overall bar
	inFlight []*stepBar          // in the order they started
	steps    map[string]*stepBar // the same, by ID
	ended    map[string]bool     // a late event does not bring a step back
	warned   map[string]bool     // steps whose warning was written
	overall  *overallState       // what the overall bar shows
	stopped  bool
	tick     *time.Ticker
	done     chan struct{} // closed by stop: the ticker's goroutine ends
	wg       sync.WaitGroup
}

// stepBar is a step in flight.
type stepBar struct {
	e       remotecache.Event // the last event
	seen    time.Time         // when its first event came
	bar     *mpb.Bar          // nil until it has been in flight for showAfter
	blob    bool              // a blob step, which the overall bar counts
	counted int64             // its bytes counted in the overall bar so far
}

// overallState is what the overall bar shows.
type overallState struct {
	blobs, blobsDone atomic.Int64
	bytes, bytesDone atomic.Int64 // bytesDone: of blobs done, skipped or in flight
	written          atomic.Int64 // bytes copied, for the throughput
	start            time.Time
	took             atomic.Int64 // nanoseconds, once it is done
}

const (
	// stepNameWidth fits "writing manifest sha256:" and 12 hex digits.
	stepNameWidth = 36
	stepBarWidth  = 20
	// overallBarWidth leaves room in 80 columns for "blobs 130/130" and
	// "210.0 MiB / 210.0 MiB  12.3 MiB/s  ETA 13s".
	overallBarWidth = 16
	refreshEvery    = 120 * time.Millisecond
	showAfter       = 250 * time.Millisecond

	hideCursor = "\x1b[?25l"
	showCursor = "\x1b[?25h"
)

func barStyle() mpb.BarFillerBuilder {
	return mpb.BarStyle().Lbound("[").Filler("=").Tip(">").Padding(" ").Rbound("]")
}

func newBarProgress(w io.Writer, pl plan) *barProgress {
	b := &barProgress{
		w:       w,
		steps:   map[string]*stepBar{},
		ended:   map[string]bool{},
		warned:  map[string]bool{},
		overall: &overallState{start: time.Now()},
		done:    make(chan struct{}),
	}
	o := b.overall
	o.blobs.Store(int64(pl.blobs))
	o.bytes.Store(pl.bytes)
	io.WriteString(w, hideCursor)
	// ForceTTY and WithAutoRefresh: --progress=tty draws bars on whatever
	// stderr is (80 columns wide when it is not a terminal).
	b.p = mpb.New(mpb.WithOutput(w), mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithRefreshRate(refreshEvery))
	// A total of -1 never completes by itself: the plan is a bound, and
	// the config and manifest come last, so stop completes it.
	b.bar = b.p.New(-1, barStyle(),
		mpb.BarWidth(overallBarWidth),
		mpb.BarPriority(-1), // on top
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			return fmt.Sprintf("blobs %d/%d", o.blobsDone.Load(), max(o.blobs.Load(), o.blobsDone.Load()))
		})),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return o.text(time.Now()) })),
	)
	if pl.bytes > 0 {
		b.bar.SetTotal(pl.bytes, false)
	}
	b.tick = time.NewTicker(showAfter / 3)
	b.wg.Go(func() {
		for {
			select {
			case now := <-b.tick.C:
				b.showSlowSteps(now)
			case <-b.done:
				return
			}
		}
	})
	return b
}

// text is the overall bar's text after the bar: bytes done of the total,
// the throughput and the time left, or the time it took.
func (o *overallState) text(now time.Time) string {
	done, total := o.bytesDone.Load(), max(o.bytes.Load(), o.bytesDone.Load())
	took := time.Duration(o.took.Load())
	elapsed := now.Sub(o.start)
	if took > 0 {
		elapsed = took
	}
	var rate float64
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(o.written.Load()) / s
	}
	s := fmt.Sprintf("%s / %s", humanBytes(done), humanBytes(total))
	if rate > 0 {
		s += "  " + humanBytes(int64(rate)) + "/s"
	}
	switch {
	case took > 0:
		return s + "  done in " + roundDuration(took).String()
	case rate > 0 && total > done:
		return s + "  ETA " + roundDuration(time.Duration(float64(total-done)/rate*float64(time.Second))).String()
	default:
		return s + "  ETA --"
	}
}

// roundDuration rounds d to what a person reads.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

func (b *barProgress) Progress(e remotecache.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped || b.ended[e.ID] {
		return
	}
	if e.Warning != "" && !b.warned[e.ID] {
		b.warned[e.ID] = true
		fmt.Fprintf(b.p, "%s: warning: %s\n", shortDigest(e.ID), e.Warning)
	}
	s := b.steps[e.ID]
	if s == nil {
		s = &stepBar{seen: time.Now(), blob: isBlobStep(e.ID)}
		if e.Completed.IsZero() {
			b.steps[e.ID] = s
			b.inFlight = append(b.inFlight, s)
		}
	}
	s.e = e
	o := b.overall
	if s.blob {
		// The overall bar counts the bytes of blobs in flight too.
		delta := e.Current - s.counted
		switch {
		case e.Err != nil:
			delta = -s.counted // failed: none of it
		case !e.Completed.IsZero():
			delta = e.Total - s.counted // done or skipped: all of it
		}
		o.bytesDone.Add(delta)
		if !e.Skipped && e.Err == nil {
			o.written.Add(delta)
		}
		s.counted += delta
	}
	if e.Completed.IsZero() {
		if s.bar != nil && e.Total > 0 {
			s.bar.SetCurrent(e.Current)
		}
		b.updateOverall()
		return
	}
	b.ended[e.ID] = true
	if b.steps[e.ID] != nil {
		delete(b.steps, e.ID)
		for i, f := range b.inFlight {
			if f == s {
				b.inFlight = append(b.inFlight[:i], b.inFlight[i+1:]...)
				break
			}
		}
	}
	switch {
	case s.bar == nil:
	case e.Err == nil && !e.Skipped && e.Total > 0:
		s.bar.SetCurrent(e.Total) // complete: drawn full once, then removed
	default:
		s.bar.Abort(true)
	}
	if s.blob && e.Err == nil {
		o.blobsDone.Add(1)
	}
	b.updateOverall()
}

// showSlowSteps gives a bar to each step that has been in flight for
// showAfter.
func (b *barProgress) showSlowSteps(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	for _, s := range b.inFlight {
		if s.bar == nil && now.Sub(s.seen) >= showAfter {
			s.bar = b.stepBar(s.e)
		}
	}
}

// stepBar makes the bar of a step: bytes done of its total, or the time
// it has taken so far.
func (b *barProgress) stepBar(e remotecache.Event) *mpb.Bar {
	name := decor.Name(shortDigest(e.ID), decor.WC{W: stepNameWidth, C: decor.DindentRight})
	opts := []mpb.BarOption{mpb.BarWidth(stepBarWidth), mpb.BarRemoveOnComplete(), mpb.PrependDecorators(name)}
	if e.Total > 0 {
		bar := b.p.New(e.Total, barStyle(), append(opts, mpb.AppendDecorators(decor.Any(func(st decor.Statistics) string {
			return humanBytes(st.Current) + " / " + humanBytes(st.Total)
		})))...)
		bar.SetCurrent(e.Current)
		return bar
	}
	return b.p.New(-1, mpb.SpinnerStyle(), append(opts, mpb.AppendDecorators(decor.NewElapsed(decor.ET_STYLE_GO, e.Started)))...)
}

// updateOverall sets the overall bar to the bytes done, raising its total
// when the plan fell short.
func (b *barProgress) updateOverall() {
	o := b.overall
	done := o.bytesDone.Load()
	if done > o.bytes.Load() {
		o.bytes.Store(done)
		b.bar.SetTotal(done, false)
	}
	b.bar.SetCurrent(done)
}

// stop removes the bars in flight, leaves the overall bar's last frame,
// complete when ok, and shows the cursor again.
func (b *barProgress) stop(ok bool) {
	b.mu.Lock()
	b.stopped = true
	b.tick.Stop()
	close(b.done)
	for _, s := range b.inFlight {
		if s.bar != nil {
			s.bar.Abort(true)
		}
	}
	b.inFlight, b.steps = nil, nil
	o := b.overall
	if ok {
		// What was done is all there was: the plan is a bound.
		o.blobs.Store(o.blobsDone.Load())
		o.bytes.Store(o.bytesDone.Load())
		o.took.Store(int64(max(time.Since(o.start), time.Nanosecond)))
		b.bar.SetTotal(-1, true)
	} else {
		b.bar.Abort(false)
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.p.Wait()
	io.WriteString(b.w, showCursor)
}
