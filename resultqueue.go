package remotecache

import "sync"

// Add hands each record's results to another goroutine, which interns
// their layer chains (blobs.go) and keeps them (results.go) while Add goes
// on with the graph: that half of an Add's work then runs on a second
// core. The results are taken in the order of the Adds, one batch at a
// time by one goroutine, so the graph is what it would be if Add did it
// all itself.
//
// What the results side owns (CacheChains.results, blobs, blobIDs, nodes,
// nodeIDs and recRes) only that goroutine touches while it runs; the rest
// of the graph it never reads: Add gives it, with each record, the record's
// first input as Add sees it, which chainHint follows. Whoever needs the
// results (Marshal; merge and drop, which move or clear a record's
// results) first calls settleResults, which waits for the goroutine to
// finish and takes what is left itself. The goroutine stops when it runs
// out of batches, so an abandoned graph leaves none behind.
//
// Nothing in that work fails on any input Add accepts. A caller that
// breaks Target's rule and changes results after Add could make it panic;
// that panic would now be on the other goroutine, or in a later Add or
// Marshal, not in the Add that was given them.

// resultBatch is the number of records' results handed over at once
// (resultQueue.size unless a test sets another).
const resultBatch = 256

// maxFreeBatches is the number of taken batches kept for Add to fill again.
const maxFreeBatches = 4

// pendingResults is what an Add hands over: the record, the first source
// of its first input slot (-1 for none), which chainHint follows, and
// the results given.
type pendingResults struct {
	rec, src int32
	results  []Result
}

// resultQueue carries batches of pendingResults from Add to the goroutine
// that takes them.
type resultQueue struct {
	batch []pendingResults // being filled by Add, under CacheChains.mu
	size  int              // of a batch

	mu      sync.Mutex
	idle    sync.Cond // signalled when running becomes false
	full    [][]pendingResults
	head    int // full[head:] are waiting
	free    [][]pendingResults
	running bool
}

// queueResults hands r's results over; src is the first source of r's
// first input slot, or -1. Called by Add, under c.mu.
func (c *CacheChains) queueResults(r, src int32, results []Result) {
	q := &c.rq
	if q.batch == nil {
		q.batch = make([]pendingResults, 0, q.size)
	}
	q.batch = append(q.batch, pendingResults{rec: r, src: src, results: results})
	if len(q.batch) < q.size {
		return
	}
	q.mu.Lock()
	q.full = append(q.full, q.batch)
	q.batch = nil
	if n := len(q.free); n > 0 {
		q.batch, q.free = q.free[n-1], q.free[:n-1]
	}
	if !q.running {
		q.running = true
		go c.takeQueued()
	}
	q.mu.Unlock()
}

// takeQueued takes the queued batches, in order, until there are none.
func (c *CacheChains) takeQueued() {
	q := &c.rq
	for {
		q.mu.Lock()
		if q.head == len(q.full) {
			clear(q.full)
			q.full, q.head = q.full[:0], 0
			q.running = false
			q.idle.Broadcast()
			q.mu.Unlock()
			return
		}
		b := q.full[q.head]
		q.full[q.head] = nil
		q.head++
		q.mu.Unlock()
		c.takeResults(b)
		clear(b) // let go of the callers' results
		q.mu.Lock()
		if len(q.free) < maxFreeBatches {
			q.free = append(q.free, b[:0])
		}
		q.mu.Unlock()
	}
}

// settleResults waits until every result handed over is taken, taking
// the last batch on the caller's goroutine; afterwards the results side is
// the caller's, until the next Add hands results over. Called under c.mu.
func (c *CacheChains) settleResults() {
	q := &c.rq
	q.mu.Lock()
	for q.running {
		q.idle.Wait()
	}
	q.mu.Unlock()
	if len(q.batch) > 0 {
		c.takeResults(q.batch)
		clear(q.batch)
		q.batch = q.batch[:0]
	}
}

// takeResults adds each record's results in the batch, in order.
func (c *CacheChains) takeResults(b []pendingResults) {
	for _, p := range b {
		if p.src >= 0 {
			c.recResults(p.rec).src = p.src + 1
		}
		c.addResults(p.rec, p.results)
	}
}
