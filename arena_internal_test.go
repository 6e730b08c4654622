package remotecache

import "testing"

// Runs of any length, a chunk's worth and more included, are slices that
// keep their elements as others are handed out, and grow in place when
// they are the last.
func TestRuns(t *testing.T) {
	var a runs[int32]
	type run struct{ off, n int32 }
	var rs []run
	for i, n := range []int32{3, 0, chunkLen - 2, 5, chunkLen, 1, 3*chunkLen + 7, 2, chunkLen - 1, 1, 2} {
		off := a.alloc(n)
		s := a.span(off, n)
		if int32(len(s)) != n {
			t.Fatalf("run %d: %d elements, want %d", i, len(s), n)
		}
		for j := range s {
			if s[j] != 0 {
				t.Fatalf("run %d: not zero", i)
			}
			s[j] = int32(i*10000 + j)
		}
		rs = append(rs, run{off, n})
	}
	for i, r := range rs {
		for j, x := range a.span(r.off, r.n) {
			if x != int32(i*10000+j) || *a.at(r.off + int32(j)) != x {
				t.Fatalf("run %d element %d: %d", i, j, x)
			}
		}
	}
	// The one before last ends its chunk: it cannot grow where it is.
	if r := rs[len(rs)-2]; a.grow(r.off, r.n, r.n+1) {
		t.Fatal("a run grew past its chunk")
	}
	last := rs[len(rs)-1]
	if !a.grow(last.off, last.n, last.n+3) || a.grow(rs[0].off, rs[0].n, rs[0].n+1) {
		t.Fatal("grow: only the last run grows in place")
	}
	if s := a.span(last.off, last.n+3); len(s) != int(last.n)+3 || s[0] != 10*10000 {
		t.Fatalf("grown run %v", s)
	}
	var c chunks[int64]
	for i := range int64(3*chunkLen + 5) {
		if got := c.add(i * 3); got != int32(i) {
			t.Fatalf("add gives index %d, want %d", got, i)
		}
	}
	for i := range c.len() {
		if *c.at(i) != int64(i)*3 {
			t.Fatalf("chunks: element %d is %d", i, *c.at(i))
		}
	}
}
