package cachetest

import (
	"maps"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// Counter counts calls per digest, for spies. Its zero value is ready, and
// it is safe for concurrent use.
type Counter struct {
	mu sync.Mutex
	n  map[digest.Digest]int
}

// Add counts one call for d.
func (c *Counter) Add(d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[digest.Digest]int{}
	}
	c.n[d]++
}

// Get returns the calls counted for d.
func (c *Counter) Get(d digest.Digest) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[d]
}

// All returns the calls counted in all, and per digest.
func (c *Counter) All() (total int, per map[digest.Digest]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.n {
		total += n
	}
	return total, maps.Clone(c.n)
}
