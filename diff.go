package remotecache

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Diff compares two cache configs, A and B (the older cache and the newer
// one, say), each with the sizes of its layer blobs (Manifest.BlobSizes; a
// nil map or a missing entry is a size not known, -1 in the report). Both
// must be configs Parse accepts: one that CheckConfig finds a problem in
// is an error of class errdefs.ErrInvalidArgument.
//
// Records are compared by identity: a record's digest with its inputs,
// each input slot in turn as the set of (selector, source identity) pairs
// of its links. A source's identity is computed the same way, so identity
// covers everything upstream: two records of one digest whose inputs
// differ, here or further up, are different records. Results are compared
// per record identity; blobs by digest, with their sizes.
//
// A divergence point is a record of B that is not in A (no record of A has
// its identity) whose inputs are all in A: every link of every input slot
// comes from a record of B whose identity some record of A has. Its own
// key changed (its digest, or a selector, while everything it is computed
// from stayed); every other record only in B is downstream of one: it has
// a link from a record only in B, and missed the cache because of it. A
// record without inputs has all its inputs in A by that rule: a new root
// (a new base image, a changed local source) is a divergence point, but
// for one case:
//
// BuildKit keys a step also by the content it reads from an input (for
// COPY --from, the files copied): a record without inputs whose digest
// comes from that content, linked without a selector into the input's
// slot beside the links of the input's own keys. When the upstream step
// that made the content changed, so did the content: the root is new
// because of that step, not a cause. Diff classes as a Consequence, not a
// divergence point, a record only in B, without inputs, that is linked
// without a selector into some slot of B together with a link from
// another record only in B that has inputs or is linked with a selector
// (content keys are neither). Two new roots in one slot, both linked
// without a selector, cannot be told apart: both are divergence points.
func Diff(a, b *CacheConfig, aSizes, bSizes map[digest.Digest]int64) (*DiffReport, error) {
	stA, err := checked(a, "diff: config A")
	if err != nil {
		return nil, err
	}
	stB, err := checked(b, "diff: config B")
	if err != nil {
		return nil, err
	}
	d := differ{
		a: newDiffSide(a, &stA, aSizes),
		b: newDiffSide(b, &stB, bSizes),
		r: &DiffReport{
			Records:      RecordsDiff{OnlyA: []DiffRecord{}, OnlyB: []DiffRecord{}},
			Results:      ResultsDiff{OnlyA: []DiffResult{}, OnlyB: []DiffResult{}, Changed: []ResultChange{}},
			Blobs:        BlobsDiff{OnlyA: []BlobSize{}, OnlyB: []BlobSize{}, Changed: []BlobChange{}},
			Divergence:   []DivergencePoint{},
			Consequences: []Consequence{},
		},
	}
	d.records()
	d.results()
	d.blobs()
	d.divergence()
	return d.r, nil
}

// recordID is a record's identity, or the key of its inputs alone.
type recordID [sha256.Size]byte

// diffSide is one config with what Diff computes of it.
type diffSide struct {
	cfg    *CacheConfig
	sizes  map[digest.Digest]int64
	ids    []recordID       // per record: identity
	inputs []recordID       // per record: key of its inputs alone
	first  map[recordID]int // identity -> lowest record index
}

func newDiffSide(cfg *CacheConfig, st *structure, sizes map[digest.Digest]int64) *diffSide {
	s := &diffSide{
		cfg:    cfg,
		sizes:  sizes,
		ids:    make([]recordID, len(cfg.Records)),
		inputs: make([]recordID, len(cfg.Records)),
		first:  make(map[recordID]int, len(cfg.Records)),
	}
	h := sha256.New()
	type entry struct {
		sel string
		id  recordID
	}
	var slot []entry
	var buf []byte
	for _, i := range st.recordOrder { // sources first
		rec := &cfg.Records[i]
		h.Reset()
		buf = binary.AppendUvarint(buf[:0], uint64(len(rec.Inputs)))
		for _, links := range rec.Inputs {
			slot = slot[:0]
			for _, in := range links {
				slot = append(slot, entry{in.Selector, s.ids[in.LinkIndex]})
			}
			slices.SortFunc(slot, func(x, y entry) int {
				return cmp.Or(strings.Compare(x.sel, y.sel), slices.Compare(x.id[:], y.id[:]))
			})
			slot = slices.Compact(slot)
			buf = binary.AppendUvarint(buf, uint64(len(slot)))
			for _, e := range slot {
				buf = binary.AppendUvarint(buf, uint64(len(e.sel)))
				buf = append(buf, e.sel...)
				buf = append(buf, e.id[:]...)
			}
		}
		h.Write(buf)
		sum(h, &s.inputs[i])
		h.Reset()
		buf = binary.AppendUvarint(buf[:0], uint64(len(rec.Digest)))
		buf = append(buf, rec.Digest...)
		buf = append(buf, s.inputs[i][:]...)
		h.Write(buf)
		sum(h, &s.ids[i])
	}
	for i := len(cfg.Records) - 1; i >= 0; i-- {
		s.first[s.ids[i]] = i
	}
	return s
}

func sum(h hash.Hash, id *recordID) { h.Sum(id[:0]) }

// has returns the record of s with identity id.
func (s *diffSide) has(id recordID) (RecordRef, bool) {
	i, ok := s.first[id]
	if !ok {
		return RecordRef{}, false
	}
	return recordRef(s.cfg, i), true
}

type differ struct {
	a, b *diffSide
	r    *DiffReport
}

// diffRecord describes record i of s, its sources' twins in other.
func diffRecord(s, other *diffSide, i int, otherIsA bool) DiffRecord {
	dr := DiffRecord{Record: recordRef(s.cfg, i), Inputs: []DiffInput{}}
	for slot, links := range s.cfg.Records[i].Inputs {
		for _, in := range links {
			di := DiffInput{Slot: slot, Selector: in.Selector, Source: recordRef(s.cfg, in.LinkIndex)}
			if ref, ok := other.has(s.ids[in.LinkIndex]); ok {
				if otherIsA {
					di.InA = &ref
				} else {
					di.InB = &ref
				}
			}
			dr.Inputs = append(dr.Inputs, di)
		}
	}
	return dr
}

func (d *differ) records() {
	for i := range d.a.cfg.Records {
		if _, ok := d.b.first[d.a.ids[i]]; !ok {
			d.r.Records.OnlyA = append(d.r.Records.OnlyA, diffRecord(d.a, d.b, i, false))
		}
	}
	for i := range d.b.cfg.Records {
		if _, ok := d.a.first[d.b.ids[i]]; !ok {
			d.r.Records.OnlyB = append(d.r.Records.OnlyB, diffRecord(d.b, d.a, i, true))
		}
	}
	for id := range d.a.first {
		if _, ok := d.b.first[id]; ok {
			d.r.Records.Common++
		}
	}
}

// sideResults is the results of each identity of one config: keys (a
// result's CreatedAt and blobs) and the results, in record order.
type sideResults struct {
	keys map[recordID]map[string]struct{}
	list map[recordID][]DiffResult
}

func (s *diffSide) results() sideResults {
	sr := sideResults{keys: map[recordID]map[string]struct{}{}, list: map[recordID][]DiffResult{}}
	w := newLayerWalk(s.cfg)
	for i := range s.cfg.Records {
		rec := &s.cfg.Records[i]
		id := s.ids[i]
		for j := range len(rec.Results) + len(rec.ChainedResults) {
			blobs := blobsOf(s.cfg, w.resultLayers(i, j))
			at := resultTime(rec, j)
			var key strings.Builder
			key.WriteString(at.UTC().Format(time.RFC3339Nano))
			size := int64(0)
			for _, bl := range blobs {
				key.WriteString(" " + string(bl))
				if n, ok := s.sizes[bl]; ok && size >= 0 {
					size += n
				} else {
					size = -1
				}
			}
			if sr.keys[id] == nil {
				sr.keys[id] = map[string]struct{}{}
			}
			if _, dup := sr.keys[id][key.String()]; dup {
				continue
			}
			sr.keys[id][key.String()] = struct{}{}
			sr.list[id] = append(sr.list[id], DiffResult{Record: recordRef(s.cfg, i), Result: j, CreatedAt: at, Blobs: blobs, Size: size})
		}
	}
	return sr
}

func (d *differ) results() {
	ra, rb := d.a.results(), d.b.results()
	rd := &d.r.Results
	done := map[recordID]bool{}
	for i := range d.a.cfg.Records {
		id := d.a.ids[i]
		if _, inB := d.b.first[id]; inB || done[id] {
			continue
		}
		done[id] = true
		rd.OnlyA = append(rd.OnlyA, ra.list[id]...)
	}
	for i := range d.b.cfg.Records {
		id := d.b.ids[i]
		if done[id] {
			continue
		}
		done[id] = true
		la, lb := ra.list[id], rb.list[id]
		switch _, inA := d.a.first[id]; {
		case !inA || len(la) == 0:
			rd.OnlyB = append(rd.OnlyB, lb...)
		case len(lb) == 0:
			rd.OnlyA = append(rd.OnlyA, la...)
		case sameKeys(ra.keys[id], rb.keys[id]):
			rd.Common++
		default:
			rd.Changed = append(rd.Changed, ResultChange{A: la, B: lb})
		}
	}
	slices.SortStableFunc(rd.OnlyA, func(x, y DiffResult) int {
		return cmp.Or(cmp.Compare(x.Record.Index, y.Record.Index), cmp.Compare(x.Result, y.Result))
	})
}

func sameKeys(a, b map[string]struct{}) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// blobSizes returns the distinct blobs of cfg's layers, in order, with
// their sizes (-1 if not known).
func (s *diffSide) blobSizes() ([]BlobSize, map[digest.Digest]int64) {
	var list []BlobSize
	m := map[digest.Digest]int64{}
	for _, l := range s.cfg.Layers {
		if _, ok := m[l.Blob]; ok {
			continue
		}
		n, ok := s.sizes[l.Blob]
		if !ok {
			n = -1
		}
		m[l.Blob] = n
		list = append(list, BlobSize{Digest: l.Blob, Size: n})
	}
	return list, m
}

func (d *differ) blobs() {
	la, ma := d.a.blobSizes()
	lb, mb := d.b.blobSizes()
	bd := &d.r.Blobs
	for _, bl := range la {
		nb, ok := mb[bl.Digest]
		switch {
		case !ok:
			bd.OnlyA = append(bd.OnlyA, bl)
			bd.OnlyABytes += max(bl.Size, 0)
		case bl.Size >= 0 && nb >= 0 && bl.Size != nb:
			bd.Changed = append(bd.Changed, BlobChange{Digest: bl.Digest, SizeA: bl.Size, SizeB: nb})
		default:
			bd.Common++
		}
	}
	for _, bl := range lb {
		if _, ok := ma[bl.Digest]; !ok {
			bd.OnlyB = append(bd.OnlyB, bl)
			bd.OnlyBBytes += max(bl.Size, 0)
		}
	}
}

// divergence finds the divergence points and the consequences (see Diff).
func (d *differ) divergence() {
	a, b := d.a, d.b
	newInB := func(i int) bool { _, ok := a.first[b.ids[i]]; return !ok }
	// was: the records only in A that have inputs, by the key of their
	// inputs.
	was := map[recordID][]RecordRef{}
	for i, rec := range a.cfg.Records {
		if _, inB := b.first[a.ids[i]]; !inB && len(rec.Inputs) > 0 {
			was[a.inputs[i]] = append(was[a.inputs[i]], recordRef(a.cfg, i))
		}
	}
	// Where each record of B is linked without a selector: (record, slot).
	type use struct{ into, slot int }
	bare := map[int][]use{}
	for i, rec := range b.cfg.Records {
		for s, links := range rec.Inputs {
			for _, in := range links {
				us := bare[in.LinkIndex]
				if in.Selector == "" && (len(us) == 0 || us[len(us)-1] != use{i, s}) {
					bare[in.LinkIndex] = append(us, use{i, s})
				}
			}
		}
	}
	for i, rec := range b.cfg.Records {
		if !newInB(i) {
			continue
		}
		if len(rec.Inputs) == 0 {
			var beside []ConsequenceLink
			for _, u := range bare[i] {
				var srcs []RecordRef
				for _, in := range b.cfg.Records[u.into].Inputs[u.slot] {
					src := in.LinkIndex
					if src != i && newInB(src) && (len(b.cfg.Records[src].Inputs) > 0 || in.Selector != "") &&
						!slices.ContainsFunc(srcs, func(r RecordRef) bool { return r.Index == src }) {
						srcs = append(srcs, recordRef(b.cfg, src))
					}
				}
				if len(srcs) > 0 {
					beside = append(beside, ConsequenceLink{Into: recordRef(b.cfg, u.into), Slot: u.slot, Sources: srcs})
				}
			}
			if len(beside) > 0 {
				d.r.Consequences = append(d.r.Consequences, Consequence{Record: recordRef(b.cfg, i), Beside: beside})
				continue
			}
		}
		allInA := true
		for _, links := range rec.Inputs {
			for _, in := range links {
				if newInB(in.LinkIndex) {
					allInA = false
				}
			}
		}
		if !allInA {
			continue
		}
		dp := DivergencePoint{Record: recordRef(b.cfg, i), Inputs: diffRecord(b, a, i, true).Inputs, Was: []RecordRef{}}
		if len(rec.Inputs) > 0 {
			dp.Was = append(dp.Was, was[b.inputs[i]]...)
		}
		d.r.Divergence = append(d.r.Divergence, dp)
	}
}
