package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	"github.com/moby/buildkit/util/compression"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// exportFunc makes an exporter writing into store, replays the graph into
// it (not timed) and returns its Finalize.
type exportFunc func(store content.Store) (func() (map[string]string, error), error)

// fillSource writes every blob of g once into a new local store under
// r.base, named for the case, which both sides read; remove removes it.
func (r *runner) fillSource(name string, g *cachegen.Graph) (src content.Store, remove func(), err error) {
	dir := filepath.Join(r.base, name+"-src")
	if src, err = local.NewStore(dir); err != nil {
		return nil, nil, err
	}
	if err := sidebyside.FillStore(r.ctx, src, g); err != nil {
		return nil, nil, err
	}
	return src, func() { os.RemoveAll(dir) }, nil
}

func (r *runner) finalizeCase(c caseSpec) error {
	t0 := time.Now()
	g := cachegen.NewWithOptions(c.seed, c.records, cachegen.Options{BlobSize: c.blobSize, MaxBlobs: c.maxBlobs})
	order := g.InOrder()
	st := g.Stats()
	genTime := time.Since(t0)

	// The source store: every blob written once, read by both sides.
	t0 = time.Now()
	src, removeSrc, err := r.fillSource(c.name, g)
	if err != nil {
		return err
	}
	defer removeSrc()
	var total int64
	for _, b := range g.Blobs {
		total += b.Descriptor.Size
	}
	fmt.Printf("\n%s: %d records, %d blobs of %s (%s in all), %d results; generated in %s, source store filled in %s\n",
		c.name, len(g.Ops), len(g.Blobs), size(c.blobSize), size(total), st.WithResults, genTime.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	ours := cachegen.NewReplayer(g, src)
	bk := sidebyside.NewBKReplayer(g, src)
	var oursLayers, bkLayers [2]int // manifest layers, distinct blobs
	oursExport := func(store content.Store) (func() (map[string]string, error), error) {
		var opts []remotecache.ExportOption
		if r.conc > 0 {
			opts = append(opts, remotecache.WithConcurrency(r.conc))
		}
		exp, err := remotecache.NewExporter(store, opts...)
		if err != nil {
			return nil, err
		}
		if _, err := ours.Replay(exp, order); err != nil {
			return nil, err
		}
		return func() (map[string]string, error) { return exp.Finalize(r.ctx) }, nil
	}
	bkExport := func(store content.Store) (func() (map[string]string, error), error) {
		exp := bkremotecache.NewExporter(store, "", true, true, compression.Config{})
		if _, err := bk.Replay(exp, order); err != nil {
			return nil, err
		}
		return func() (map[string]string, error) { return exp.Finalize(r.ctx) }, nil
	}

	// one does a first export into a fresh store and a re-export into the
	// same store; the store is removed afterwards.
	runIdx := 0
	one := func(side string, export exportFunc, check bool, layers *[2]int) (first, again sample, err error) {
		runIdx++
		dir := filepath.Join(r.base, fmt.Sprintf("%s-dst-%d", c.name, runIdx))
		defer os.RemoveAll(dir)
		store, err := local.NewStore(dir)
		if err != nil {
			return first, again, err
		}
		timed := func(phase string) (sample, error) {
			fin, err := export(store)
			if err != nil {
				return sample{}, err
			}
			syncDisks()
			var res map[string]string
			s, err := r.measure(c.name+"/"+phase, side, func() error {
				var err error
				res, err = fin()
				return err
			})
			if err != nil {
				return s, err
			}
			if res[remotecache.ExporterResponseManifestDesc] == "" {
				return s, fmt.Errorf("finalize returned no manifest descriptor")
			}
			if check {
				n, d, err := checkStore(r.ctx, store, res[remotecache.ExporterResponseManifestDesc])
				if err != nil {
					return s, err
				}
				*layers = [2]int{n, d}
			}
			return s, nil
		}
		if first, err = timed("first"); err != nil {
			return first, again, errors.Wrap(err, "first export")
		}
		if again, err = timed("again"); err != nil {
			return first, again, errors.Wrap(err, "re-export")
		}
		return first, again, nil
	}

	if c.warmup {
		if r.sideOurs {
			if _, _, err := one("ours", oursExport, true, &oursLayers); err != nil {
				return errors.Wrap(err, "ours (warm-up)")
			}
		}
		if r.sideBK {
			if _, _, err := one("buildkit", bkExport, true, &bkLayers); err != nil {
				return errors.Wrap(err, "buildkit (warm-up)")
			}
		}
	}
	label := fmt.Sprintf("%d × %s (%d records)", len(g.Blobs), size(c.blobSize), len(g.Ops))
	first := row{name: "Finalize " + label + ", fresh store", unit: "ms", per: 1, records: len(g.Ops)}
	again := row{name: "Finalize " + label + ", re-export", unit: "ms", per: 1, records: len(g.Ops)}
	n := r.runs(c)
	for i := range n {
		for _, side := range r.sides() {
			export, layers, firsts, agains := exportFunc(oursExport), &oursLayers, &first.ours, &again.ours
			if side == "buildkit" {
				export, layers, firsts, agains = bkExport, &bkLayers, &first.bk, &again.bk
			}
			f, a, err := one(side, export, i == 0 && !c.warmup, layers)
			if err != nil {
				return errors.Wrapf(err, "%s", side)
			}
			*firsts = append(*firsts, f)
			*agains = append(*agains, a)
		}
		fmt.Printf("  run %d/%d: first%s; re-export%s\n", i+1, n, r.progressLine(first), r.progressLine(again))
	}
	r.rows = append(r.rows, first, again)
	r.notes = append(r.notes, fmt.Sprintf("Finalize %s: the manifest lists %d layers, %d distinct (ours) and %d layers, %d distinct (BuildKit), of the graph's %d blobs (%s); both sides read from one local store; copies at a time: %s (ours), 4 (BuildKit: limited.Default)",
		label, oursLayers[0], oursLayers[1], bkLayers[0], bkLayers[1], len(g.Blobs), size(total), r.concDesc()))
	return nil
}

// checkStore reads the manifest Finalize wrote and tells whether store
// holds its config and every layer it lists, with the right sizes. It
// returns the number of layers and of distinct layer blobs.
func checkStore(ctx context.Context, store content.Store, descJSON string) (layers, distinct int, err error) {
	var desc ocispec.Descriptor
	if err := json.Unmarshal([]byte(descJSON), &desc); err != nil {
		return 0, 0, err
	}
	ra, err := store.ReaderAt(ctx, desc)
	if err != nil {
		return 0, 0, errors.Wrap(err, "check: manifest")
	}
	defer ra.Close()
	dt, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return 0, 0, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		return 0, 0, errors.Wrap(err, "check: manifest")
	}
	if m.MediaType != ocispec.MediaTypeImageManifest {
		return 0, 0, fmt.Errorf("check: manifest media type %q", m.MediaType)
	}
	seen := map[string]bool{}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		info, err := store.Info(ctx, d.Digest)
		if err != nil {
			return 0, 0, errors.Wrapf(err, "check: blob %s", d.Digest)
		}
		if info.Size != d.Size {
			return 0, 0, fmt.Errorf("check: blob %s has %d bytes, want %d", d.Digest, info.Size, d.Size)
		}
		seen[d.Digest.String()] = true
	}
	return len(m.Layers), len(seen) - 1, nil
}
