package remotecache

// chunks is a growing array of T in fixed chunks: adding never copies what
// is there, so a graph's arrays cost their size once, not the sum of every
// size they grew through (which a doubling slice costs, and the garbage
// collector counts), and pointers into it stay valid.
type chunks[T any] struct {
	cs [][]T
	n  int32
}

const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits
)

// at returns element i, which must exist.
func (a *chunks[T]) at(i int32) *T {
	return &a.cs[i>>chunkBits][i&(chunkLen-1)]
}

// len returns the number of elements.
func (a *chunks[T]) len() int32 { return a.n }

// add appends x and returns its index.
func (a *chunks[T]) add(x T) int32 {
	i := a.n
	if int(i>>chunkBits) == len(a.cs) {
		a.cs = append(a.cs, make([]T, chunkLen))
	}
	a.cs[i>>chunkBits][i&(chunkLen-1)] = x
	a.n++
	return i
}

// runs is an array of T in fixed chunks, handed out in runs that never
// cross from one chunk's array to another's, so that a run is a slice: a
// run longer than a chunk gets chunks of its own that share one array.
type runs[T any] struct {
	cs [][]T
	n  int32 // the next free index
}

// alloc returns the index of a new run of k zero elements.
func (a *runs[T]) alloc(k int32) int32 {
	if k == 0 {
		return a.n
	}
	if in := a.n & (chunkLen - 1); in != 0 && in+k > chunkLen {
		a.n += chunkLen - in // the rest of this chunk is too short
	}
	if int(a.n>>chunkBits) == len(a.cs) {
		m := (k + chunkLen - 1) >> chunkBits
		back := make([]T, int(m)*chunkLen)
		for j := range int(m) {
			a.cs = append(a.cs, back[j*chunkLen:(j+1)*chunkLen:len(back)])
		}
	}
	off := a.n
	a.n += k
	return off
}

// span returns the run of k elements at off.
func (a *runs[T]) span(off, k int32) []T {
	if k == 0 {
		return nil
	}
	c := a.cs[off>>chunkBits]
	i := off & (chunkLen - 1)
	return c[i : i+k : i+k]
}

// at returns element i.
func (a *runs[T]) at(i int32) *T {
	return &a.cs[i>>chunkBits][i&(chunkLen-1)]
}

// grow extends the run of k elements at off, the last one handed out, to
// n elements where it is, if it fits in its array, and says whether it
// did.
func (a *runs[T]) grow(off, k, n int32) bool {
	if off+k != a.n || k == 0 {
		return false
	}
	c := a.cs[off>>chunkBits]
	if int(off&(chunkLen-1)+n) > cap(c) {
		return false
	}
	// The chunks of a longer run must exist.
	if int((off+n-1)>>chunkBits) >= len(a.cs) {
		return false
	}
	a.n = off + n
	return true
}
