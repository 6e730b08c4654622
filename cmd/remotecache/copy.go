package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/buildcache/remotecache"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

var copyCommand = &command{
	name: "copy",
	args: "SRC DST [--format image-manifest|oci-index|manifest-list] [--concurrency N]",
	summary: `Copy the cache that SRC's tag names to DST, in the manifest form that
--format gives (default image-manifest), copying up to --concurrency layer
blobs at once (default 4, or more where SRC or DST advises it). Blobs DST has
already are not copied again. DST's tag moves last, once everything it names
is written.`,
	nargs: exactly(2),
	flags: func(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
		f := exportFlags(fs)
		return func(ctx context.Context, c *cli, args []string) error {
			return c.export(ctx, args, f)
		}
	},
}

var mergeCommand = &command{
	name: "merge",
	args: "SRC... DST [--format image-manifest|oci-index|manifest-list] [--concurrency N]",
	summary: `Merge the caches that the SRCs' tags name into one cache at DST: the
union of their records, a record found in several caches once, with the
newest of its results. Flags as for copy; DST's tag moves last.`,
	nargs: atLeast(2),
	flags: func(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
		f := exportFlags(fs)
		return func(ctx context.Context, c *cli, args []string) error {
			return c.export(ctx, args, f)
		}
	},
}

// exportOpts are the flags of copy and merge.
type exportOpts struct {
	format      string
	concurrency int
	// concurrencySet tells whether --concurrency was given; if not, the
	// library picks (more for a registry: remotecache.ConcurrencyAdvisor).
	concurrencySet func() bool
}

func exportFlags(fs *flag.FlagSet) *exportOpts {
	f := &exportOpts{}
	fs.StringVar(&f.format, "format", remotecache.FormatImageManifest.String(), "")
	fs.IntVar(&f.concurrency, "concurrency", remotecache.DefaultConcurrency, "")
	f.concurrencySet = func() bool {
		set := false
		fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == "concurrency" })
		return set
	}
	return f
}

// export imports every source (all of args but the last) into one
// exporter, writes the cache into the destination (the last) and moves the
// destination's tag to it.
func (c *cli) export(ctx context.Context, args []string, f *exportOpts) error {
	format, err := remotecache.ParseManifestFormat(f.format)
	if err != nil {
		return usagef(nil, "--format: %v", err)
	}
	if f.concurrency < 1 {
		return usagef(nil, "--concurrency %d: must be at least 1", f.concurrency)
	}
	locs, err := parseLocations(args)
	if err != nil {
		return err
	}
	srcLocs, dstLoc := locs[:len(locs)-1], locs[len(locs)-1]

	// Sources first, each with the manifest its tag names, so that a
	// source that cannot be read leaves no new empty layout behind at DST.
	srcs := make([]source, 0, len(srcLocs))
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()
	manifests := make([]ocispec.Descriptor, len(srcLocs))
	for i, l := range srcLocs {
		s, err := openSource(ctx, l)
		if err != nil {
			return err
		}
		srcs = append(srcs, s)
		if manifests[i], err = s.manifest(ctx); err != nil {
			return err
		}
	}
	dst, err := openDestination(ctx, dstLoc)
	if err != nil {
		return err
	}
	defer dst.Close()

	sink, flush := c.progress()
	defer flush()
	opts := []remotecache.ExportOption{remotecache.WithManifestFormat(format), remotecache.WithProgress(sink)}
	if f.concurrencySet() {
		opts = append(opts, remotecache.WithConcurrency(f.concurrency))
	}
	exp, err := remotecache.NewExporter(dst, opts...)
	if err != nil {
		return err
	}
	for i, s := range srcs {
		done := remotecache.OneOff(sink, "importing "+srcLocs[i].String())
		if err := done(remotecache.Import(ctx, s, manifests[i], exp)); err != nil {
			return errors.Wrapf(err, "%s", srcLocs[i])
		}
	}
	resp, err := exp.Finalize(ctx)
	if err != nil {
		return errors.Wrapf(err, "%s", dstLoc)
	}
	descJSON, ok := resp[remotecache.ExporterResponseManifestDesc]
	if !ok {
		return errors.Errorf("%s: nothing to write: no record of the source has all its layer blobs", dstLoc)
	}
	var desc ocispec.Descriptor
	if err := json.Unmarshal([]byte(descJSON), &desc); err != nil {
		return errors.Wrap(err, "decoding the manifest descriptor")
	}
	done := remotecache.OneOff(sink, "tagging "+dstLoc.String())
	if err := done(dst.tag(ctx, desc)); err != nil {
		return errors.Wrapf(err, "%s", dstLoc)
	}
	flush()
	fmt.Fprintf(c.stdout, "%s %s %s\n", dstLoc, desc.Digest, format)
	return nil
}
