package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	"github.com/moby/buildkit/client/ociindex"
	"github.com/moby/buildkit/util/compression"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
	"github.com/buildcache/remotecache/ocilayout"
)

// layoutRow is one line of the layout table: the floor, ours and
// BuildKit's samples of one phase.
type layoutRow struct {
	name            string
	floor, ours, bk []sample
}

// layoutCase exports the graph of c into fresh OCI layout directories
// three ways, in alternating runs (floor, ours, BuildKit, floor, ...):
//
//   - the floor: a plain loop over the blobs our export writes (its layers,
//     config and manifest), 4 at a time, each read from the source store,
//     hashed while it is written to a temp file of its own in
//     blobs/sha256, checked, synced and renamed into place. No directory
//     sync, no index.json: the least any safe export does.
//   - ours: Finalize into an ocilayout.Store, then Tag (which syncs
//     blobs/sha256 and replaces index.json).
//   - BuildKit's type=local path: its exporter into containerd's local
//     store on the directory (what the client gives buildkitd), then
//     client/ociindex's Put of the tag.
//
// Opening the store is not timed; Finalize and the tag are timed apart
// (a GC runs between them) and reported whole and Finalize alone. Each run
// then exports again into the same directory ("re-export"; ours and
// BuildKit only).
func (r *runner) layoutCase(c caseSpec) error {
	t0 := time.Now()
	g := cachegen.NewWithOptions(c.seed, c.records, cachegen.Options{BlobSize: c.blobSize, MaxBlobs: c.maxBlobs})
	order := g.InOrder()
	src, removeSrc, err := r.fillSource(c.name, g)
	if err != nil {
		return err
	}
	defer removeSrc()
	fmt.Printf("\n%s: %d records, %d blobs of %s, into OCI layouts; source store filled in %s; load average %s\n",
		c.name, len(g.Ops), len(g.Blobs), size(c.blobSize), time.Since(t0).Round(time.Millisecond), loadAvg())
	load0 := loadAvg()

	ours := cachegen.NewReplayer(g, src)
	bk := sidebyside.NewBKReplayer(g, src)
	const tag = "latest"
	runIdx := 0
	newDir := func(side string) string {
		runIdx++
		return filepath.Join(r.base, fmt.Sprintf("%s-%s-%d", c.name, side, runIdx))
	}
	// timed syncs the disks (not timed), measures fin, which finalizes,
	// then tagFn, which tags what fin wrote (if not nil). It returns the
	// sum of the two (the export) and fin's sample alone.
	timed := func(phase, side string, fin func() (ocispec.Descriptor, error), tagFn func(ocispec.Descriptor) error) (total, finOnly sample, desc ocispec.Descriptor, err error) {
		syncDisks()
		finOnly, err = r.measure(c.name+"/"+phase, side, func() error {
			var err error
			desc, err = fin()
			return err
		})
		if err != nil || tagFn == nil {
			return finOnly, finOnly, desc, err
		}
		t, err := r.measure(c.name+"/"+phase+"-tag", side, func() error { return tagFn(desc) })
		total = sample{wall: finOnly.wall + t.wall, cpu: finOnly.cpu + t.cpu, mallocs: finOnly.mallocs + t.mallocs}
		return total, finOnly, desc, err
	}
	// manifestDesc is the descriptor a Finalize response names.
	manifestDesc := func(res map[string]string) (ocispec.Descriptor, error) {
		desc, ok, err := remotecache.ResponseManifest(res)
		if !ok && err == nil {
			err = errors.Errorf("Finalize's response %v: no descriptor", res)
		}
		return desc, err
	}

	// phases are the samples of one run of a side: the first export and
	// the re-export, each whole and its Finalize alone.
	type phases struct{ first, firstFin, again, againFin sample }

	// ours exports twice into a new layout; it returns the blobs of the
	// first export, read back, for the floor.
	oursRun := func() (ph phases, blobs []floorBlob, err error) {
		dir := newDir("ours")
		defer os.RemoveAll(dir)
		s, err := ocilayout.OpenContext(r.ctx, dir)
		if err != nil {
			return ph, nil, err
		}
		defer s.Close()
		export := func(phase string) (total, fin sample, desc ocispec.Descriptor, err error) {
			var opts []remotecache.ExportOption
			if r.conc > 0 {
				opts = append(opts, remotecache.WithConcurrency(r.conc))
			}
			exp, err := remotecache.NewExporter(s, opts...)
			if err != nil {
				return total, fin, desc, err
			}
			if _, err := ours.Replay(exp, order); err != nil {
				return total, fin, desc, err
			}
			return timed(phase, "ours", func() (ocispec.Descriptor, error) {
				res, err := exp.Finalize(r.ctx)
				if err != nil {
					return ocispec.Descriptor{}, err
				}
				return manifestDesc(res)
			}, func(desc ocispec.Descriptor) error { return s.Tag(r.ctx, tag, desc) })
		}
		var desc ocispec.Descriptor
		if ph.first, ph.firstFin, desc, err = export("first"); err != nil {
			return ph, nil, errors.Wrap(err, "first export")
		}
		if blobs, err = exportedBlobs(r.ctx, s, src, desc); err != nil {
			return ph, nil, err
		}
		if ph.again, ph.againFin, _, err = export("again"); err != nil {
			return ph, nil, errors.Wrap(err, "re-export")
		}
		if got, err := s.Resolve(r.ctx, tag); err != nil || got.Digest != desc.Digest {
			return ph, nil, fmt.Errorf("tag after the re-export: %v, %v", got.Digest, err)
		}
		return ph, blobs, nil
	}

	bkRun := func() (ph phases, err error) {
		dir := newDir("buildkit")
		defer os.RemoveAll(dir)
		store, err := local.NewStore(dir)
		if err != nil {
			return ph, err
		}
		export := func(phase string) (total, fin sample, err error) {
			exp := bkremotecache.NewExporter(store, "", true, true, compression.Config{})
			if _, err := bk.Replay(exp, order); err != nil {
				return total, fin, err
			}
			total, fin, _, err = timed(phase, "buildkit", func() (ocispec.Descriptor, error) {
				res, err := exp.Finalize(r.ctx)
				if err != nil {
					return ocispec.Descriptor{}, err
				}
				return manifestDesc(res)
			}, func(desc ocispec.Descriptor) error {
				return ociindex.NewStoreIndex(dir).Put(desc, ociindex.Tag(tag))
			})
			return total, fin, err
		}
		if ph.first, ph.firstFin, err = export("first"); err != nil {
			return ph, errors.Wrap(err, "first export")
		}
		if ph.again, ph.againFin, err = export("again"); err != nil {
			return ph, errors.Wrap(err, "re-export")
		}
		return ph, nil
	}

	floorRun := func(blobs []floorBlob) (sample, error) {
		dir := newDir("floor")
		defer os.RemoveAll(dir)
		s, _, _, err := timed("first", "floor", func() (ocispec.Descriptor, error) {
			return ocispec.Descriptor{}, writeFloor(r.ctx, dir, blobs, 4)
		}, nil)
		if err != nil {
			return s, err
		}
		for _, b := range blobs {
			fi, err := os.Stat(filepath.Join(dir, "blobs", "sha256", b.desc.Digest.Encoded()))
			if err != nil || fi.Size() != b.desc.Size {
				return s, fmt.Errorf("floor: blob %s: %v", b.desc.Digest, err)
			}
		}
		return s, nil
	}

	// The warm-up run of ours also gives the floor its blobs.
	_, blobs, err := oursRun()
	if err != nil {
		return errors.Wrap(err, "ours (warm-up)")
	}
	var total int64
	for _, b := range blobs {
		total += b.desc.Size
	}
	if _, err := floorRun(blobs); err != nil {
		return errors.Wrap(err, "floor (warm-up)")
	}
	if r.sideBK {
		if _, err := bkRun(); err != nil {
			return errors.Wrap(err, "buildkit (warm-up)")
		}
	}

	label := fmt.Sprintf("%d × %s (%d records) into an OCI layout", len(g.Blobs), size(c.blobSize), len(g.Ops))
	first := layoutRow{name: "Export " + label + ", fresh layout: Finalize + tag"}
	firstFin := layoutRow{name: "… of which Finalize"}
	again := layoutRow{name: "Export " + label + ", re-export: Finalize + tag"}
	againFin := layoutRow{name: "… of which Finalize"}
	n := r.runs(c)
	for i := range n {
		f, err := floorRun(blobs)
		if err != nil {
			return errors.Wrap(err, "floor")
		}
		first.floor = append(first.floor, f)
		for _, side := range r.sides() {
			var ph phases
			var err error
			if side == "ours" {
				ph, _, err = oursRun()
			} else {
				ph, err = bkRun()
			}
			if err != nil {
				return errors.Wrapf(err, "%s", side)
			}
			for _, x := range []struct {
				row *layoutRow
				s   sample
			}{{&first, ph.first}, {&firstFin, ph.firstFin}, {&again, ph.again}, {&againFin, ph.againFin}} {
				if side == "ours" {
					x.row.ours = append(x.row.ours, x.s)
				} else {
					x.row.bk = append(x.row.bk, x.s)
				}
			}
		}
		fmt.Printf("  run %d/%d: first%s; re-export%s\n", i+1, n, layoutProgress(first), layoutProgress(again))
	}
	r.layouts = append(r.layouts, first, firstFin, again, againFin)
	r.notes = append(r.notes, fmt.Sprintf("Export %s: the floor writes the %d blobs ours writes (%s: the manifest's distinct layers, the config, the manifest), 4 at a time; ours is Finalize + Tag through ocilayout, BuildKit's is Finalize into containerd's local store + ociindex Put; copies at a time: %s (ours), 4 (BuildKit); load average %s at the start, %s at the end",
		label, len(blobs), size(total), r.concDesc(), load0, loadAvg()))
	return nil
}

// floorBlob is one blob for the floor to write, with where to read it.
type floorBlob struct {
	desc ocispec.Descriptor
	from content.Provider
}

// exportedBlobs returns the blobs of the export desc names in s: its
// distinct layers, read from src, and its config and manifest, read from
// s into memory.
func exportedBlobs(ctx context.Context, s *ocilayout.Store, src content.Provider, desc ocispec.Descriptor) ([]floorBlob, error) {
	mdt, err := content.ReadBlob(ctx, s, desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mdt, &m); err != nil {
		return nil, err
	}
	cdt, err := content.ReadBlob(ctx, s, m.Config)
	if err != nil {
		return nil, err
	}
	var blobs []floorBlob
	seen := map[digest.Digest]bool{}
	for _, l := range m.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			blobs = append(blobs, floorBlob{desc: l, from: src})
		}
	}
	return append(blobs, floorBlob{m.Config, memBlob(cdt)}, floorBlob{desc, memBlob(mdt)}), nil
}

// memBlob serves one blob from memory.
type memBlob []byte

func (b memBlob) ReaderAt(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
	return memReaderAt{bytes.NewReader(b)}, nil
}

type memReaderAt struct{ *bytes.Reader }

func (memReaderAt) Close() error { return nil }

// writeFloor writes blobs into dir/blobs/sha256, jobs at a time, each
// hashed while it is written to its own temp file, its size and digest
// checked, synced and renamed into place.
func writeFloor(ctx context.Context, dir string, blobs []floorBlob, jobs int) error {
	bdir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return err
	}
	var eg errgroup.Group
	eg.SetLimit(jobs)
	for _, b := range blobs {
		eg.Go(func() error { return writeFloorBlob(ctx, bdir, b) })
	}
	return eg.Wait()
}

var floorBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func writeFloorBlob(ctx context.Context, bdir string, b floorBlob) error {
	ra, err := b.from.ReaderAt(ctx, b.desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	f, err := os.CreateTemp(bdir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	bufp := floorBufs.Get().(*[]byte)
	defer floorBufs.Put(bufp)
	buf := *bufp
	h := digest.Canonical.Digester()
	for off := int64(0); off < b.desc.Size; {
		n, err := ra.ReadAt(buf[:min(int64(len(buf)), b.desc.Size-off)], off)
		if n == 0 {
			f.Close()
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		h.Hash().Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		off += int64(n)
	}
	if h.Digest() != b.desc.Digest {
		f.Close()
		return fmt.Errorf("floor: blob %s: read bytes of %s", b.desc.Digest, h.Digest())
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(bdir, b.desc.Digest.Encoded()))
}

// loadAvg is the 1, 5 and 15 minute load average (Linux), or "n/a".
func loadAvg() string {
	dt, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	if f := strings.Fields(string(dt)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "n/a"
}

func layoutProgress(rw layoutRow) string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		ss   []sample
	}{{"floor", rw.floor}, {"ours", rw.ours}, {"buildkit", rw.bk}} {
		if len(s.ss) > 0 {
			fmt.Fprintf(&b, " %s %s", s.name, fmtVal(float64(s.ss[len(s.ss)-1].wall), "ms"))
		}
	}
	return b.String()
}

// layoutTable is the table of the layout cases, or "" if none ran.
func (r *runner) layoutTable() string {
	if len(r.layouts) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n| Case | Runs | Floor (median) | Ours (median) | BuildKit (median) | Ours/floor (wall) | Ours/floor (CPU) | Ours/BuildKit (wall) | Ours/BuildKit (CPU) | Floor min–max | Ours min–max | BuildKit min–max | Floor, ours, BuildKit CPU (median) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	wall := func(s sample) float64 { return float64(s.wall) }
	cpu := func(s sample) float64 { return float64(s.cpu) }
	ratio := func(a, b []sample, f func(sample) float64) string {
		if len(a) == 0 || len(b) == 0 || stat(b, f) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", stat(a, f)/stat(b, f))
	}
	for _, rw := range r.layouts {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, %s, %s |\n",
			rw.name, max(len(rw.floor), len(rw.ours), len(rw.bk)),
			cell(rw.floor, wall, "ms"), cell(rw.ours, wall, "ms"), cell(rw.bk, wall, "ms"),
			ratio(rw.ours, rw.floor, wall), ratio(rw.ours, rw.floor, cpu),
			ratio(rw.ours, rw.bk, wall), ratio(rw.ours, rw.bk, cpu),
			span(rw.floor, wall, "ms"), span(rw.ours, wall, "ms"), span(rw.bk, wall, "ms"),
			cell(rw.floor, cpu, "ms"), cell(rw.ours, cpu, "ms"), cell(rw.bk, cpu, "ms"))
	}
	return b.String()
}
