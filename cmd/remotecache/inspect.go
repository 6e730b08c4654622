package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/buildcache/remotecache"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

func (c *cli) inspectCommand() *cobra.Command {
	var out *outputFlags
	cmd := locationCommand(&cobra.Command{
		Use:   "inspect SRC [--json|--dot]",
		Short: "Show what is in a cache",
		Long: `Show the cache that SRC's tag names: the manifest form, how many records,
layers and distinct blobs it has and their total size, and its graph: each
record with its digest, its inputs (the records it is reached from, with
selectors) and its results (layer chains, with sizes). Blobs missing from
the store, and problems in the config that make an import refuse it (an
index out of range, a loop), are flagged, and the exit status is then 1.
--json writes all of it as JSON; --dot writes the graph for Graphviz
(records as nodes, links as edges labelled with the input slot and
selector). Nothing is written into SRC.`,
		RunE: c.runLocations(func(ctx context.Context, locs []location) error {
			r, err := inspect(ctx, locs[0])
			if err != nil {
				return err
			}
			if err := out.write(c.stdout, r); err != nil {
				return err
			}
			// A damaged cache is shown as far as it can be, then fails.
			if n := r.problems(); n > 0 {
				return errors.Errorf("%s: %s", r.Location, plural(n, "problem"))
			}
			return nil
		}),
	}, exactArgs(1))
	out = addOutputFlags(cmd, "write the report as JSON", "write the graph for Graphviz")
	return cmd
}

// report is what inspect shows; its JSON is the output of --json.
type report struct {
	Location string             `json:"location"`
	Format   string             `json:"format"`
	Manifest ocispec.Descriptor `json:"manifest"`
	Config   ocispec.Descriptor `json:"config"`
	Counts   counts             `json:"counts"`
	// TotalBytes is the size of the manifest, the config and every
	// distinct layer blob.
	TotalBytes int64 `json:"totalBytes"`
	// Blobs are the distinct layer blobs, in the manifest's order, then
	// any the config names that the manifest does not list.
	Blobs []blob `json:"blobs"`
	// Layers are the config's layers: a blob on top of a parent layer.
	Layers  []layer  `json:"layers"`
	Records []record `json:"records"`
	// Problems are the config's structural problems, each with where it
	// is ("record 3: input 0 link 0: loop through record 3"): what makes
	// an import of the cache refuse it.
	Problems []string `json:"problems,omitempty"`
}

// problems counts what is wrong with the cache: structural problems of the
// config and blobs with a problem.
func (r *report) problems() int {
	n := len(r.Problems)
	for _, b := range r.Blobs {
		if b.Problem != "" {
			n++
		}
	}
	return n
}

type counts struct {
	Records int `json:"records"`
	Layers  int `json:"layers"`
	Blobs   int `json:"blobs"`
	Missing int `json:"missing"` // blobs not in the store
}

type blob struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType,omitempty"`
	Size      int64         `json:"size"`
	// Problem, when not empty, is what is wrong with the blob: "missing"
	// from the store, a size in the store other than the descriptor's, or
	// "not in the manifest".
	Problem string `json:"problem,omitempty"`
}

// problemMissing is the problem of a blob that is not in the store.
const problemMissing = "missing"

type layer struct {
	Blob   digest.Digest `json:"blob"`
	Parent int           `json:"parent"` // -1: a base layer
}

type record struct {
	Index   int           `json:"index"`
	Digest  digest.Digest `json:"digest"`
	Inputs  [][]input     `json:"inputs,omitempty"`
	Results []result      `json:"results,omitempty"`
}

type input struct {
	Record   int           `json:"record"`
	Digest   digest.Digest `json:"digest,omitempty"` // empty: index out of range
	Selector string        `json:"selector,omitempty"`
}

type result struct {
	CreatedAt time.Time `json:"createdAt"`
	// Chained is set for a result given as a list of layers, each loaded
	// without its parents.
	Chained bool `json:"chained,omitempty"`
	// Layers are the blobs of the chain, base first.
	Layers []digest.Digest `json:"layers"`
	Size   int64           `json:"size"`
	// Problem, when not empty, is why the result cannot be loaded: a blob
	// of it has a problem, or the config's layer indexes are wrong.
	Problem string `json:"problem,omitempty"`
}

// inspect reads the cache at l into a report.
func inspect(ctx context.Context, l location) (*report, error) {
	src, desc, err := openTagged(ctx, l, true)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	m, cfg, err := remotecache.ReadCache(ctx, src, desc)
	if err != nil {
		return nil, err
	}
	r := &report{
		Location:   l.String(),
		Format:     m.Format.String(),
		Manifest:   m.Descriptor,
		Config:     m.Config,
		TotalBytes: m.Descriptor.Size,
		Blobs:      []blob{},
		Layers:     make([]layer, len(cfg.Layers)),
		Records:    make([]record, len(cfg.Records)),
	}
	if m.Format != remotecache.FormatConfigOnly {
		r.TotalBytes += m.Config.Size // in the config-only form, the config is the manifest
	}
	for _, err := range remotecache.CheckConfig(cfg) {
		r.Problems = append(r.Problems, err.Error())
	}

	at := map[digest.Digest]int{} // index in r.Blobs
	addBlob := func(b blob) {
		if _, ok := at[b.Digest]; !ok {
			at[b.Digest] = len(r.Blobs)
			r.Blobs = append(r.Blobs, b)
		}
	}
	for _, d := range m.Layers {
		addBlob(blob{Digest: d.Digest, MediaType: d.MediaType, Size: d.Size})
	}
	for i, cl := range cfg.Layers {
		r.Layers[i] = layer{Blob: cl.Blob, Parent: cl.ParentIndex}
		addBlob(blob{Digest: cl.Blob, Size: -1, Problem: "not in the manifest"})
	}
	for i := range r.Blobs {
		b := &r.Blobs[i]
		if problem := checkBlob(ctx, src, b); problem != "" {
			b.Problem = problem
		}
		if b.Problem == problemMissing {
			r.Counts.Missing++
		}
		r.TotalBytes += max(b.Size, 0)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	for i, cr := range cfg.Records {
		rec := record{Index: i, Digest: cr.Digest}
		for _, slot := range cr.Inputs {
			links := make([]input, len(slot))
			for j, in := range slot {
				links[j] = input{Record: in.LinkIndex, Selector: in.Selector}
				if in.LinkIndex >= 0 && in.LinkIndex < len(cfg.Records) {
					links[j].Digest = cfg.Records[in.LinkIndex].Digest
				}
			}
			rec.Inputs = append(rec.Inputs, links)
		}
		for _, res := range cr.Results {
			indexes, ok := chainOf(cfg.Layers, res.LayerIndex)
			rec.Results = append(rec.Results, r.result(res.CreatedAt, false, indexes, ok, cfg.Layers, at))
		}
		for _, res := range cr.ChainedResults {
			ok := true
			for _, li := range res.LayerIndexes {
				ok = ok && li >= 0 && li < len(cfg.Layers)
			}
			rec.Results = append(rec.Results, r.result(res.CreatedAt, true, res.LayerIndexes, ok, cfg.Layers, at))
		}
		r.Records[i] = rec
	}
	r.Counts.Records, r.Counts.Layers, r.Counts.Blobs = len(r.Records), len(r.Layers), len(r.Blobs)
	return r, nil
}

// checkBlob looks b up in the store and says what is wrong with it, if
// anything; it fills in the size of a blob the manifest does not list.
func checkBlob(ctx context.Context, p content.Provider, b *blob) string {
	var size int64
	if ip, ok := p.(content.InfoProvider); ok {
		info, err := ip.Info(ctx, b.Digest)
		if err != nil {
			return problemOf(err)
		}
		size = info.Size
	} else {
		ra, err := p.ReaderAt(ctx, ocispec.Descriptor{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType})
		if err != nil {
			return problemOf(err)
		}
		size = ra.Size()
		ra.Close()
	}
	if b.Size < 0 {
		b.Size = size
	} else if size != b.Size {
		return fmt.Sprintf("%d bytes in the store, descriptor says %d", size, b.Size)
	}
	return ""
}

func problemOf(err error) string {
	if errdefs.IsNotFound(err) {
		return problemMissing
	}
	return err.Error()
}

// chainOf returns the layer indexes of the chain whose top is top, base
// first, and false if an index is out of range or the parents loop.
func chainOf(layers []remotecache.CacheLayer, top int) ([]int, bool) {
	var chain []int
	for i := top; i != -1; i = layers[i].ParentIndex {
		if i < 0 || i >= len(layers) || len(chain) == len(layers) {
			return chain, false
		}
		chain = append(chain, i)
	}
	slices.Reverse(chain)
	return chain, true
}

// result describes the result made of the layers at indexes; ok is false
// if the config's indexes were wrong. at maps a blob to its index in
// r.Blobs.
func (r *report) result(createdAt time.Time, chained bool, indexes []int, ok bool, layers []remotecache.CacheLayer, at map[digest.Digest]int) result {
	res := result{CreatedAt: createdAt, Chained: chained, Layers: []digest.Digest{}}
	if !ok {
		res.Problem = "layer index out of range or parents in a loop"
	}
	for _, li := range indexes {
		if li < 0 || li >= len(layers) {
			continue
		}
		b := r.Blobs[at[layers[li].Blob]]
		res.Layers = append(res.Layers, b.Digest)
		res.Size += max(b.Size, 0)
		if b.Problem != "" && res.Problem == "" {
			res.Problem = fmt.Sprintf("blob %s: %s", b.Digest, b.Problem)
		}
	}
	return res
}

// writeText writes the report for people.
func (r *report) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Location)
	if r.Format == remotecache.FormatConfigOnly.String() {
		fmt.Fprintf(&b, "  config    %s  %s (no manifest), %s\n", r.Config.Digest, r.Format, humanBytes(r.Config.Size))
	} else {
		fmt.Fprintf(&b, "  manifest  %s  %s, %s\n", r.Manifest.Digest, r.Format, humanBytes(r.Manifest.Size))
		fmt.Fprintf(&b, "  config    %s  %s\n", r.Config.Digest, humanBytes(r.Config.Size))
	}
	fmt.Fprintf(&b, "  %s, %s, %s, %s in all (%d bytes)\n",
		plural(r.Counts.Records, "record"), plural(r.Counts.Layers, "layer"), plural(r.Counts.Blobs, "distinct blob"), humanBytes(r.TotalBytes), r.TotalBytes)
	if r.Counts.Missing > 0 {
		fmt.Fprintf(&b, "  %s MISSING from the store\n", plural(r.Counts.Missing, "blob"))
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "  %s in the config: an import refuses it\n", plural(len(r.Problems), "PROBLEM"))
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "    PROBLEM: %s\n", p)
		}
	}

	blobs := map[digest.Digest]blob{}
	b.WriteString("\nblobs\n")
	for _, bl := range r.Blobs {
		blobs[bl.Digest] = bl
		fmt.Fprintf(&b, "  %s  %9s  %s%s\n", bl.Digest, humanBytes(max(bl.Size, 0)), bl.MediaType, mark(bl.Problem))
	}

	b.WriteString("\nrecords\n")
	for _, rec := range r.Records {
		fmt.Fprintf(&b, "  #%d %s\n", rec.Index, rec.Digest)
		for slot, links := range rec.Inputs {
			for _, in := range links {
				from := string(in.Digest)
				if from == "" {
					from = "(no such record)"
				}
				fmt.Fprintf(&b, "     input %d <- #%d %s", slot, in.Record, from)
				if in.Selector != "" {
					fmt.Fprintf(&b, "  selector %q", in.Selector)
				}
				b.WriteByte('\n')
			}
		}
		for _, res := range rec.Results {
			kind := "result"
			if res.Chained {
				kind = "chained result"
			}
			fmt.Fprintf(&b, "     %s %s  %s, %s%s\n", kind, res.CreatedAt.Format(time.RFC3339Nano), plural(len(res.Layers), "layer"), humanBytes(res.Size), mark(res.Problem))
			for _, d := range res.Layers {
				fmt.Fprintf(&b, "       %s  %9s%s\n", d, humanBytes(max(blobs[d].Size, 0)), mark(blobs[d].Problem))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mark flags a problem at the end of a line.
func mark(problem string) string {
	switch problem {
	case "":
		return ""
	case problemMissing:
		return "  MISSING"
	default:
		return "  PROBLEM: " + problem
	}
}
