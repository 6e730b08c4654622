package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/buildcache/remotecache"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

func (c *cli) trimCommand() *cobra.Command {
	var (
		maxSize, maxAge string
		dryRun          bool
	)
	cmd := locationCommand(&cobra.Command{
		Use:   "trim SRC DST [--max-size SIZE] [--max-age D] [--dry-run] [--format FORM] [--concurrency N] [--json]",
		Short: "Cut a cache down to a size, an age or both",
		Long: `Write into DST the cache that SRC's tag names cut down to a budget: the
bytes of its distinct layer blobs (--max-size, as 500MB, 5GB or 2GiB), the
age of its results (--max-age, as 720h or 30d), or both. Results go oldest
first: those older than the maximum age, then more until the size fits; a
blob counts once while any kept result uses it. Records that lead to no
kept result go with them; every other record stays whole, so each step
whose result is kept still hits the cache.

It prints what went and what stayed (records, results, layers, blobs,
bytes), then, as copy does, "DST DIGEST FORMAT"; --json prints all of it
as one JSON object. --dry-run says what would go and writes nothing. DST
may be SRC: the tag moves last, once the trimmed cache is written, and
blobs no longer used stay until prune removes them. The manifest form is
SRC's unless --format says otherwise (or DST does not take it).`,
	}, exactArgs(2))
	f := addExportFlags(cmd)
	cmd.Flags().StringVar(&maxSize, "max-size", "", "keep at most `SIZE` of layer blobs (500MB, 5GB, 2GiB; SI units are powers of 1000)")
	cmd.Flags().StringVar(&maxAge, "max-age", "", "drop the results older than `D` (720h, 30d)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would go, write nothing")
	cmd.RunE = c.runE(func(ctx context.Context, args []string) error {
		var opts []remotecache.TrimOption
		var budget []string
		if maxSize == "" && maxAge == "" {
			return usagef("trim: give --max-size, --max-age or both")
		}
		if maxSize != "" {
			n, err := parseSize(maxSize)
			if err != nil {
				return usagef("trim: --max-size %v", err)
			}
			opts = append(opts, remotecache.WithMaxSize(n))
			budget = append(budget, fmt.Sprintf("max size %s (%d bytes)", maxSize, n))
		}
		if maxAge != "" {
			d, err := parseAge(maxAge)
			if err != nil {
				return usagef("trim: --max-age %v", err)
			}
			if d <= 0 {
				return usagef("trim: --max-age %s: must be positive", maxAge)
			}
			opts = append(opts, remotecache.WithMaxAge(d))
			budget = append(budget, "max age "+maxAge)
		}
		if err := f.check(); err != nil {
			return err
		}
		locs, err := parseLocations(args)
		if err != nil {
			return err
		}
		src, dst := locs[0], locs[1]
		if f.format != "" {
			if _, err := f.manifestFormat(dst); err != nil {
				return err
			}
		}

		sc, err := readCache(ctx, src)
		if err != nil {
			return err
		}
		defer sc.src.Close()
		trimmed, rep, err := remotecache.Trim(sc.cfg, sc.blobSizes(), opts...)
		if err != nil {
			return errors.Wrapf(err, "%s", src)
		}
		res := &trimResult{Source: src.String(), Destination: dst.String(), Budget: strings.Join(budget, ", "), DryRun: dryRun, TrimReport: rep}
		if !dryRun {
			if rep.After.Results == 0 {
				res.print(c, f.json)
				return errors.Errorf("%s: the budget leaves no result: nothing to write into %s", src, dst)
			}
			format, err := trimFormat(f, sc.m.Format, dst)
			if err != nil {
				return err
			}
			trim := *sc
			trim.cfg = trimmed
			if res.exportResult, err = c.write(ctx, []*storedCache{&trim}, dst, format, f); err != nil {
				return err
			}
		}
		return res.print(c, f.json)
	})
	return cmd
}

// trimFormat is the form trim writes: --format, else the source's when
// the destination takes it, else the destination's default.
func trimFormat(f *exportFlags, src remotecache.ManifestFormat, dst location) (remotecache.ManifestFormat, error) {
	if f.format != "" || (src == remotecache.FormatConfigOnly) != dst.objectStore() {
		return f.manifestFormat(dst)
	}
	return src, nil
}

// trimResult is what trim prints; its JSON is the output of --json: the
// trim report and, unless it was a dry run, what copy --json prints of
// the export.
type trimResult struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Budget      string `json:"budget"`
	DryRun      bool   `json:"dryRun"`
	remotecache.TrimReport
	*exportResult
}

func (r *trimResult) print(c *cli, asJSON bool) error {
	if asJSON {
		return writeJSON(c.stdout, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trim %s to %s: %s\n", r.Source, r.Destination, r.Budget)
	fmt.Fprintf(&b, "  before  %s\n", countsText(r.Before))
	fmt.Fprintf(&b, "  after   %s\n", countsText(r.After))
	if len(r.Dropped) > 0 {
		fmt.Fprintf(&b, "dropped %s, oldest first:\n", plural(len(r.Dropped), "result"))
		for _, d := range r.Dropped {
			fmt.Fprintf(&b, "  #%d %s result %d  %s  by %s, freed %s\n", d.Record.Index, shortDigest(string(d.Record.Digest)), d.Result,
				d.CreatedAt.Format(time.RFC3339), d.Reason, humanBytes(d.Freed))
		}
	}
	if len(r.DroppedRecords) > 0 {
		fmt.Fprintf(&b, "dropped %s that lead to no kept result:\n", plural(len(r.DroppedRecords), "record"))
		for _, rec := range r.DroppedRecords {
			fmt.Fprintf(&b, "  #%d %s\n", rec.Index, shortDigest(string(rec.Digest)))
		}
	}
	if len(r.DroppedBlobs) > 0 {
		var bytes int64
		for _, bl := range r.DroppedBlobs {
			bytes += max(bl.Size, 0)
		}
		fmt.Fprintf(&b, "dropped %s, %s:\n", plural(len(r.DroppedBlobs), "blob"), humanBytes(bytes))
		for _, bl := range r.DroppedBlobs {
			fmt.Fprintf(&b, "  %s  %s\n", bl.Digest, humanBytes(bl.Size))
		}
	}
	if len(r.Dropped)+len(r.DroppedRecords)+len(r.DroppedBlobs) == 0 {
		b.WriteString("nothing to drop: the cache is within the budget\n")
	}
	if r.DryRun {
		b.WriteString("dry run: nothing written\n")
	}
	if _, err := io.WriteString(c.stdout, b.String()); err != nil {
		return err
	}
	if r.exportResult != nil {
		return r.exportResult.print(c, false)
	}
	return nil
}

// countsText describes the counts of a cache config.
func countsText(n remotecache.CacheCounts) string {
	return fmt.Sprintf("%s, %s, %s, %s, %s (%d bytes)", plural(n.Records, "record"), plural(n.Results, "result"),
		plural(n.Layers, "layer"), plural(n.Blobs, "blob"), humanBytes(n.Bytes), n.Bytes)
}
