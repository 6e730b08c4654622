package main

import (
	"encoding/json"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/buildcache/remotecache"
	digest "github.com/opencontainers/go-digest"
)

// jsonEvent is one line of --progress=json: a progress event of a step,
// or a note.
type jsonEvent struct {
	// Time is when the line was written.
	Time time.Time `json:"time"`
	// ID names the step ("writing layer sha256:…", "importing oci:…").
	ID string `json:"id,omitempty"`
	// Status is "started" (the step's first event), "progress", "done",
	// "skipped" (there was nothing to do: the blob was there), "failed",
	// or "note" for a message that is no step's.
	Status string `json:"status"`
	// Digest is the blob the step writes, for the steps that write one.
	Digest digest.Digest `json:"digest,omitempty"`
	// Current and Total are bytes done of the step's bytes, for steps
	// that copy bytes.
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
	// Started and Completed are when the step started and ended.
	Started   *time.Time `json:"started,omitempty"`
	Completed *time.Time `json:"completed,omitempty"`
	Warning   string     `json:"warning,omitempty"`
	Error     string     `json:"error,omitempty"`
	Message   string     `json:"message,omitempty"`
	// Detail says how a skipped step was done without writing, e.g.
	// "mounted" for a blob a registry mounted from another repository.
	Detail string `json:"detail,omitempty"`
}

// jsonProgress writes every event as one JSON object on a line.
type jsonProgress struct {
	mu      sync.Mutex
	w       io.Writer
	started map[string]bool
}

func newJSONProgress(w io.Writer) *jsonProgress {
	return &jsonProgress{w: w, started: map[string]bool{}}
}

func (p *jsonProgress) Progress(e remotecache.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	j := jsonEvent{
		Time:    time.Now(),
		ID:      e.ID,
		Current: e.Current,
		Total:   e.Total,
		Warning: e.Warning,
	}
	if !e.Started.IsZero() {
		j.Started = &e.Started
	}
	if isBlobStep(e.ID) {
		if d := digest.Digest(e.ID[strings.LastIndexByte(e.ID, ' ')+1:]); d.Validate() == nil {
			j.Digest = d
		}
	}
	switch {
	case e.Completed.IsZero() && !p.started[e.ID]:
		j.Status = "started"
	case e.Completed.IsZero():
		j.Status = "progress"
	case e.Err != nil:
		j.Status, j.Error = "failed", oneLine(e.Err.Error())
	case e.Skipped:
		j.Status, j.Detail = "skipped", e.Detail
	default:
		j.Status = "done"
	}
	if !e.Completed.IsZero() {
		j.Completed = &e.Completed
	}
	p.started[e.ID] = true
	writeJSONLine(p.w, j)
}

func (p *jsonProgress) stop(bool) {}

// writeJSONLine writes v as JSON on one line.
func writeJSONLine(w io.Writer, v any) {
	dt, err := json.Marshal(v)
	if err != nil {
		return // the types written here always encode
	}
	w.Write(append(dt, '\n'))
}
