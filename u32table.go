package remotecache

import "math/bits"

// u32Table is a hash table of uint32 keys to int32 values of 0 and more,
// for the indexes whose keys are hashes already (childindex.go, blobs.go):
// open addressing in one array of uint64 slots, probed linearly, at most
// three quarters full (as full as a Go map, so growing it allocates no
// more). Its array holds no pointers, so the garbage collector does not
// scan it; a lookup costs one multiply and, mostly, one cache line, and
// growing rehashes the array in order, with no hashing of strings. Deletes
// shift the entries after them back, so that there are no tombstones.
type u32Table struct {
	slots []uint64 // key<<32 | value+1; 0 is an empty slot
	n     int
	shift uint8 // 64 - log2(len(slots))
}

// u32TableMin is the size of a table's first array.
const u32TableMin = 1 << 10

func packSlot(k uint32, v int32) uint64 { return uint64(k)<<32 | uint64(uint32(v)+1) }

// home is where the probe for k starts: Fibonacci hashing, which spreads
// keys whose low bits are alike (tests mask hashes to make them collide).
func (t *u32Table) home(k uint32) int {
	return int((uint64(k) * 0x9e3779b97f4a7c15) >> t.shift)
}

// get returns the value of k and whether k is there.
func (t *u32Table) get(k uint32) (int32, bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := len(t.slots) - 1
	for i := t.home(k); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if uint32(s>>32) == k {
			return int32(uint32(s)) - 1, true
		}
	}
}

// set gives k the value v, which must not be negative.
func (t *u32Table) set(k uint32, v int32) {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow()
	}
	mask := len(t.slots) - 1
	for i := t.home(k); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			t.slots[i] = packSlot(k, v)
			t.n++
			return
		}
		if uint32(s>>32) == k {
			t.slots[i] = packSlot(k, v)
			return
		}
	}
}

// del removes k, if it is there.
func (t *u32Table) del(k uint32) {
	if t.n == 0 {
		return
	}
	mask := len(t.slots) - 1
	i := t.home(k)
	for ; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if uint32(s>>32) == k {
			break
		}
	}
	// Move back each entry of the run after i whose probe passes i.
	for j := i; ; {
		j = (j + 1) & mask
		s := t.slots[j]
		if s == 0 {
			break
		}
		if h := t.home(uint32(s >> 32)); (j-h)&mask >= (j-i)&mask {
			t.slots[i] = s
			i = j
		}
	}
	t.slots[i] = 0
	t.n--
}

// grow doubles the array (or makes the first) and puts every entry back.
func (t *u32Table) grow() {
	old := t.slots
	size := max(u32TableMin, 2*len(old))
	t.slots = make([]uint64, size)
	t.shift = uint8(64 - bits.Len(uint(size-1)))
	mask := size - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := t.home(uint32(s >> 32))
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}
