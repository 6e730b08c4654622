package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/buildcache/remotecache"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

func (c *cli) verifyCommand() *cobra.Command {
	var repair, dryRun bool
	cmd := locationCommand(&cobra.Command{
		Use:   "verify SRC [--repair [--dry-run]]",
		Short: "Check that a cache is whole, or repair it",
		Long: `Check that every blob of the cache that SRC's tag names (the manifest, the
cache config and every layer) is in the store with the size and digest its
descriptor gives, that the config has none of the problems that make an
import refuse it, and that every layer the config names is in the
manifest. Each problem is written to stdout, one per line, and the exit
status is 1. Nothing is written into SRC.

--repair rewrites the cache at SRC without the results whose blobs are
gone (the store says not found, or the manifest does not list them), in
the same manifest form, moves the tag to it last and says what it
dropped; then it verifies the repaired cache. Any other answer from the
store (a refusal, an error, a size that is not the descriptor's) fails it,
and nothing is written. With --dry-run it says what it would drop and
writes nothing. Blobs the repaired cache no longer names stay until prune
removes them.`,
		RunE: c.runE(func(ctx context.Context, args []string) error {
			if dryRun && !repair {
				return usagef("verify: --dry-run goes with --repair")
			}
			locs, err := parseLocations(args)
			if err != nil {
				return err
			}
			if repair {
				return c.repair(ctx, locs[0], dryRun)
			}
			src, desc, err := openTagged(ctx, locs[0], true)
			if err != nil {
				return err
			}
			defer src.Close()
			return c.verify(ctx, locs[0], src, desc)
		}),
	}, exactArgs(1))
	cmd.Flags().BoolVar(&repair, "repair", false, "rewrite the cache without the results whose blobs are gone, then verify it")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "with --repair: say what would be dropped, write nothing")
	return cmd
}

// verify checks the cache at desc in src, the cache of l.
func (c *cli) verify(ctx context.Context, l location, src source, desc ocispec.Descriptor) error {
	problems, err := remotecache.Verify(ctx, src, desc)
	if err != nil {
		return errors.Wrapf(err, "%s", l)
	}
	for _, p := range problems {
		fmt.Fprintln(c.stdout, p)
	}
	if len(problems) > 0 {
		return errors.Errorf("%s: %s", l, plural(len(problems), "problem"))
	}
	m, err := remotecache.ReadManifest(ctx, src, desc)
	if err != nil {
		return errors.Wrapf(err, "%s", l)
	}
	if m.Format == remotecache.FormatConfigOnly {
		fmt.Fprintf(c.stdout, "%s: ok: config %s and %s\n", l, desc.Digest, plural(len(m.Layers), "layer blob"))
		return nil
	}
	fmt.Fprintf(c.stdout, "%s: ok: manifest %s, config and %s\n", l, desc.Digest, plural(len(m.Layers), "layer blob"))
	return nil
}

// repair rewrites the cache of l without the results whose blobs are
// gone, moves the tag to it and verifies it.
func (c *cli) repair(ctx context.Context, l location, dryRun bool) error {
	// Opening a layout to write makes one where there is none.
	if !dryRun && l.scheme == schemeOCI {
		if _, err := os.Stat(filepath.Join(l.path, ocispec.ImageLayoutFile)); err != nil {
			return errors.Wrapf(err, "%s: not an OCI image layout", l)
		}
	}
	st, desc, err := openTagged(ctx, l, dryRun)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := remotecache.ReadManifest(ctx, st, desc)
	if err != nil {
		return errors.Wrapf(err, "%s", l)
	}
	var pl planner
	pl.addManifest(m)

	t := &tally{failures: &c.failures}
	sink, stop := c.progress(pl.plan(m.Format))
	defer stop(false)
	t.next = sink
	opts := []remotecache.RepairOption{remotecache.WithRepairExport(remotecache.WithProgress(t))}
	if dryRun {
		opts = append(opts, remotecache.WithRepairDryRun())
	}
	rep, err := remotecache.Repair(ctx, st, desc, st, opts...)
	if err != nil && !(errdefs.IsFailedPrecondition(err) && len(rep.Dropped) > 0) {
		return errors.Wrapf(err, "%s", l)
	}
	if rep.Written {
		done := remotecache.OneOff(t, "tagging "+l.String())
		if err := done(st.tag(ctx, rep.Manifest)); err != nil {
			return errors.Wrapf(err, "%s", l)
		}
	}
	stop(true)
	c.printRepair(l, rep, dryRun)
	if err != nil {
		// Every result names a missing blob.
		return errors.Wrapf(err, "%s: nothing written", l)
	}
	if rep.Written {
		fmt.Fprintf(c.stdout, "%s %s %s\n", l, rep.Manifest.Digest, rep.Format)
		desc = rep.Manifest
	}
	if dryRun {
		return nil
	}
	return c.verify(ctx, l, st, desc)
}

func (c *cli) printRepair(l location, rep remotecache.RepairReport, dryRun bool) {
	var b strings.Builder
	if !rep.NeedsRepair() {
		fmt.Fprintf(&b, "%s: no blob missing: nothing to repair\n", l)
		c.stdout.Write([]byte(b.String()))
		return
	}
	fmt.Fprintf(&b, "%s: %s missing\n", l, plural(len(rep.Missing), "blob"))
	for _, m := range rep.Missing {
		if m.NotListed {
			fmt.Fprintf(&b, "  %s  named by the config, not listed in the manifest\n", m.Digest)
		} else {
			fmt.Fprintf(&b, "  %s  %s\n", m.Digest, humanBytes(m.Size))
		}
	}
	verb := "dropped"
	if dryRun {
		verb = "would drop"
	}
	fmt.Fprintf(&b, "%s %s:\n", verb, plural(len(rep.Dropped), "result"))
	for _, d := range rep.Dropped {
		missing := make([]string, len(d.Missing))
		for i, m := range d.Missing {
			missing[i] = shortDigest(string(m))
		}
		fmt.Fprintf(&b, "  #%d %s result %d  needs %s\n", d.Record.Index, shortDigest(string(d.Record.Digest)), d.Result, strings.Join(missing, ", "))
	}
	fmt.Fprintf(&b, "  before  %s\n", countsText(rep.Before))
	fmt.Fprintf(&b, "  after   %s\n", countsText(rep.After))
	if dryRun {
		b.WriteString("dry run: nothing written\n")
	}
	c.stdout.Write([]byte(b.String()))
}
