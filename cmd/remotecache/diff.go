package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/buildcache/remotecache"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

func (c *cli) diffCommand() *cobra.Command {
	var out *outputFlags
	cmd := locationCommand(&cobra.Command{
		Use:   "diff A B [--json|--dot]",
		Short: "Compare two caches",
		Long: `Compare the cache that A's tag names with the one B's tag names (an older
build's and a newer one's, say): the records, results and blobs only in A,
only in B, or changed, with sizes, and the divergence points: the steps of
B whose own cache key changed while everything they are computed from was
in A, each with its inputs and the record of A it replaced. Every other
record only in B is below one of them. Records are compared with
everything upstream of them: the same digest reached from other inputs is
another record.

--json writes the comparison as JSON, the divergence points under a
top-level "divergence" array; --dot writes B's graph for Graphviz, the
divergence points in red, the records only in B in orange, and the records
only in A in grey. Nothing is written into A or B.`,
		RunE: c.runLocations(func(ctx context.Context, locs []location) error {
			caches, closeAll, err := readCaches(ctx, locs)
			if err != nil {
				return err
			}
			defer closeAll()
			a, b := caches[0], caches[1]
			rep, err := remotecache.Diff(a.cfg, b.cfg, a.blobSizes(), b.blobSizes())
			if err != nil {
				return errors.Wrapf(err, "diff %s %s", a.loc, b.loc)
			}
			d := &diffResult{A: a.loc.String(), B: b.loc.String(), DiffReport: rep, a: a, b: b}
			return out.write(c.stdout, d)
		}),
	}, exactArgs(2))
	out = addOutputFlags(cmd, "write the comparison as JSON", "write B's graph for Graphviz, the divergence points highlighted")
	return cmd
}

// diffResult is what diff shows; its JSON is the output of --json: the
// two locations and the library's report.
type diffResult struct {
	A string `json:"a"`
	B string `json:"b"`
	*remotecache.DiffReport
	a, b *storedCache
}

// ref names a record of A or B in the text.
func ref(side string, r remotecache.RecordRef) string {
	return fmt.Sprintf("%s#%d %s", side, r.Index, shortDigest(string(r.Digest)))
}

// inputText describes an input link of a record of side, with the record
// of the other side that has the source's identity.
func inputText(side string, in remotecache.DiffInput) string {
	s := fmt.Sprintf("input %d <- %s", in.Slot, ref(side, in.Source))
	switch {
	case in.InA != nil:
		s += " (" + ref("A", *in.InA) + ")"
	case in.InB != nil:
		s += " (" + ref("B", *in.InB) + ")"
	case side == "A":
		s += " (only in A)"
	default:
		s += " (only in B)"
	}
	if in.Selector != "" {
		s += fmt.Sprintf("  selector %q", shortDigest(in.Selector))
	}
	return s
}

func resultText(side string, r remotecache.DiffResult) string {
	size := "size not known"
	if r.Size >= 0 {
		size = humanBytes(r.Size)
	}
	return fmt.Sprintf("result %d of %s  %s  %s, %s", r.Result, ref(side, r.Record), r.CreatedAt.Format(time.RFC3339), plural(len(r.Blobs), "blob"), size)
}

func blobText(b remotecache.BlobSize) string {
	if b.Size < 0 {
		return fmt.Sprintf("%s  size not known", b.Digest)
	}
	return fmt.Sprintf("%s  %s", b.Digest, humanBytes(b.Size))
}

// cacheSummary counts a cache's records, results and distinct blobs.
func cacheSummary(sc *storedCache) string {
	results := 0
	for _, r := range sc.cfg.Records {
		results += len(r.Results) + len(r.ChainedResults)
	}
	sizes := sc.blobSizes()
	seen := map[digest.Digest]bool{}
	var bytes int64
	for _, l := range sc.cfg.Layers {
		if !seen[l.Blob] {
			seen[l.Blob] = true
			bytes += max(sizes[l.Blob], 0)
		}
	}
	return fmt.Sprintf("%s, %s, %s, %s", plural(len(sc.cfg.Records), "record"), plural(results, "result"), plural(len(seen), "blob"), humanBytes(bytes))
}

// writeText writes the comparison for people.
func (d *diffResult) writeText(w io.Writer) error {
	r := d.DiffReport
	var b strings.Builder
	fmt.Fprintf(&b, "A  %s  %s\n", d.A, cacheSummary(d.a))
	fmt.Fprintf(&b, "B  %s  %s\n", d.B, cacheSummary(d.b))
	fmt.Fprintf(&b, "records  %d in both, %d only in A, %d only in B\n", r.Records.Common, len(r.Records.OnlyA), len(r.Records.OnlyB))
	fmt.Fprintf(&b, "results  %d the same, %d only in A, %d only in B, %d records with other results\n", r.Results.Common, len(r.Results.OnlyA), len(r.Results.OnlyB), len(r.Results.Changed))
	fmt.Fprintf(&b, "blobs    %d in both, %d only in A (%s), %d only in B (%s), %d of another size\n", r.Blobs.Common,
		len(r.Blobs.OnlyA), humanBytes(r.Blobs.OnlyABytes), len(r.Blobs.OnlyB), humanBytes(r.Blobs.OnlyBBytes), len(r.Blobs.Changed))
	if r.Empty() {
		b.WriteString("\nA and B hold the same cache\n")
		_, err := io.WriteString(w, b.String())
		return err
	}

	if len(r.Divergence) > 0 {
		fmt.Fprintf(&b, "\n%s: where B's cache first leaves A's\n", plural(len(r.Divergence), "divergence point"))
		for _, p := range r.Divergence {
			fmt.Fprintf(&b, "  %s\n", ref("B", p.Record))
			for _, in := range p.Inputs {
				fmt.Fprintf(&b, "     %s\n", inputText("B", in))
			}
			for _, was := range p.Was {
				fmt.Fprintf(&b, "     was %s\n", ref("A", was))
			}
		}
	}
	if len(r.Consequences) > 0 {
		b.WriteString("\nnew only because a step above them changed (content-keyed roots)\n")
		for _, c := range r.Consequences {
			for _, l := range c.Beside {
				beside := make([]string, len(l.Sources))
				for i, s := range l.Sources {
					beside[i] = ref("B", s)
				}
				fmt.Fprintf(&b, "  %s  in input %d of %s, beside %s\n", ref("B", c.Record), l.Slot, ref("B", l.Into), strings.Join(beside, ", "))
			}
		}
	}
	for _, side := range []struct {
		name    string
		records []remotecache.DiffRecord
		results []remotecache.DiffResult
		blobs   []remotecache.BlobSize
	}{
		{"A", r.Records.OnlyA, r.Results.OnlyA, r.Blobs.OnlyA},
		{"B", r.Records.OnlyB, r.Results.OnlyB, r.Blobs.OnlyB},
	} {
		if len(side.records)+len(side.results)+len(side.blobs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nonly in %s\n", side.name)
		for _, rec := range side.records {
			fmt.Fprintf(&b, "  record %s\n", ref(side.name, rec.Record))
			for _, in := range rec.Inputs {
				fmt.Fprintf(&b, "     %s\n", inputText(side.name, in))
			}
		}
		for _, res := range side.results {
			fmt.Fprintf(&b, "  %s\n", resultText(side.name, res))
		}
		for _, bl := range side.blobs {
			fmt.Fprintf(&b, "  blob %s\n", blobText(bl))
		}
	}
	if len(r.Results.Changed)+len(r.Blobs.Changed) > 0 {
		b.WriteString("\nchanged\n")
		for _, ch := range r.Results.Changed {
			for _, res := range ch.A {
				fmt.Fprintf(&b, "  A %s\n", resultText("A", res))
			}
			for _, res := range ch.B {
				fmt.Fprintf(&b, "  B %s\n", resultText("B", res))
			}
		}
		for _, bl := range r.Blobs.Changed {
			fmt.Fprintf(&b, "  blob %s  %s in A, %s in B\n", bl.Digest, humanBytes(bl.SizeA), humanBytes(bl.SizeB))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
