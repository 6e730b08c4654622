package remotecache

import (
	"sync"
	"time"
)

// Event is one progress update of a step of an export. A step is named by
// ID ("writing layer sha256:…", "writing config sha256:…", "writing manifest
// sha256:…"); it is reported once when it starts and once when it completes,
// with updates of Current in between for steps that copy bytes.
type Event struct {
	// ID names the step.
	ID string
	// Started is when the step started.
	Started time.Time
	// Completed is when the step ended; zero while it runs.
	Completed time.Time
	// Current is the number of bytes done of Total. Both are zero for steps
	// that do not copy bytes.
	Current, Total int64
	// Skipped is true when the step had nothing to do: the blob was already
	// in the store, or there was nothing to export.
	Skipped bool
	// Detail, when not empty, says in a few words how a skipped step's
	// blob came to be in the store without being sent, as the store told
	// it (see SkipDetailer): "mounted from registry.example.com/team/app"
	// for a blob a registry mounted from another of its repositories.
	Detail string
	// Warning, when not empty, is something the user should know about the
	// step that did not make it fail.
	Warning string
	// Err is the error the step ended with, if any.
	Err error
}

// ProgressSink receives progress events. Events are delivered from one
// goroutine at a time, in order for each step, and a slow sink never slows
// the export down: updates that pile up for a step are coalesced.
type ProgressSink interface {
	Progress(Event)
}

// ProgressFunc adapts a function to a ProgressSink.
type ProgressFunc func(Event)

// Progress calls f(e).
func (f ProgressFunc) Progress(e Event) { f(e) }

// progress queues events for a sink and delivers them from its own
// goroutine, so that senders never wait for the sink. Pending updates of
// the same step are merged into the latest one; completions are never lost.
type progress struct {
	sink ProgressSink

	mu      sync.Mutex
	queue   []string         // step ids with a pending event, in order
	pending map[string]Event // latest pending event per step id
	running bool             // a delivery goroutine is active
	idle    chan struct{}    // closed when the queue drains; nil if idle
}

func newProgress(sink ProgressSink) *progress {
	if sink == nil {
		return nil
	}
	return &progress{sink: sink, pending: map[string]Event{}}
}

// send queues e. It never blocks on the sink.
func (p *progress) send(e Event) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if _, ok := p.pending[e.ID]; !ok {
		p.queue = append(p.queue, e.ID)
	}
	p.pending[e.ID] = e
	if !p.running {
		p.running = true
		if p.idle == nil {
			p.idle = make(chan struct{})
		}
		go p.deliver()
	}
	p.mu.Unlock()
}

func (p *progress) deliver() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running = false
			if p.idle != nil {
				close(p.idle)
				p.idle = nil
			}
			p.mu.Unlock()
			return
		}
		id := p.queue[0]
		p.queue = p.queue[1:]
		e := p.pending[id]
		delete(p.pending, id)
		p.mu.Unlock()
		p.sink.Progress(e)
	}
}

// drained returns a channel that is closed once every queued event has been
// delivered.
func (p *progress) drained() <-chan struct{} {
	done := make(chan struct{})
	if p == nil {
		close(done)
		return done
	}
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	if idle == nil {
		close(done)
		return done
	}
	return idle
}

// step is one step being reported.
type step struct {
	p *progress
	e Event
}

// start reports that the step id started and returns its handle.
func (p *progress) start(id string, total int64) *step {
	s := &step{p: p, e: Event{ID: id, Started: time.Now(), Total: total}}
	p.send(s.e)
	return s
}

// update reports bytes done.
func (s *step) update(current int64) {
	if s.p == nil {
		return
	}
	s.e.Current = current
	s.p.send(s.e)
}

// warn reports a warning on the step.
func (s *step) warn(msg string) {
	s.e.Warning = msg
	s.p.send(s.e)
}

// skip reports that the step completed with nothing to do.
func (s *step) skip() {
	s.e.Skipped = true
	s.done(nil)
}

// done reports that the step completed with err (nil on success) and
// returns err.
func (s *step) done(err error) error {
	s.e.Completed = time.Now()
	s.e.Err = err
	if err == nil && s.e.Total > 0 && !s.e.Skipped {
		s.e.Current = s.e.Total
	}
	s.p.send(s.e)
	return err
}

// OneOff reports the start of a step named id to sink and returns the
// function that reports its end: done := OneOff(sink, id); …; return
// done(err). A nil sink is allowed and reports nothing. Unlike the sinks
// given to an Exporter, sink is called synchronously.
func OneOff(sink ProgressSink, id string) (done func(err error) error) {
	started := time.Now()
	if sink != nil {
		sink.Progress(Event{ID: id, Started: started})
	}
	return func(err error) error {
		if sink != nil {
			sink.Progress(Event{ID: id, Started: started, Completed: time.Now(), Err: err})
		}
		return err
	}
}
