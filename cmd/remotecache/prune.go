package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/ocilayout"
	"github.com/buildcache/remotecache/s3"
	"github.com/containerd/containerd/v2/core/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

func (c *cli) pruneCommand() *cobra.Command {
	var (
		dryRun bool
		grace  time.Duration
	)
	cmd := locationCommand(&cobra.Command{
		Use:   "prune LOC [--dry-run] [--grace-period D]",
		Short: "Remove the blobs no cache uses",
		Long: `Remove the blobs that no cache at LOC uses, and say how many blobs and
bytes that freed. --dry-run says what would be removed and removes nothing.

In an OCI layout (DIR or oci:DIR): every blob that no tag reaches, and the
leftovers of unfinished writes. It waits for exports into DIR in progress
to finish first (exports made with this library; BuildKit's type=local
exporter takes no lock, so do not prune a directory a buildkitd exports
into).

In an s3: or azblob: location: every blob under the blobs prefix that no
cache config under the manifests prefix names, whatever its name, unless
it is younger than --grace-period: an export in progress writes its blobs
before its config, and reuses the blobs it finds without refreshing them
if they are younger than the touch refresh age (24h). The default grace
period is the larger of 1h and that age; a shorter one can remove a blob
that an export in progress is about to name.`,
	}, exactArgs(1))
	cmd.RunE = c.runE(func(ctx context.Context, args []string) error {
		l, err := pruneLocation(args[0])
		if err != nil {
			return err
		}
		switch {
		case l.scheme == schemeOCI && cmd.Flags().Changed("grace-period"):
			return usagef("prune: --grace-period: %s: only s3: and azblob: locations have one (an OCI layout is locked while it is written)", args[0])
		case l.scheme == schemeOCI:
			return c.pruneLayout(ctx, l.path, dryRun)
		case l.objectStore():
			var gp *time.Duration // nil: the store's default
			if cmd.Flags().Changed("grace-period") {
				gp = &grace
			}
			return c.pruneObjectStore(ctx, l, dryRun, gp)
		default:
			return usagef("prune: %s: only OCI layout directories, s3: and azblob: locations can be pruned", args[0])
		}
	})
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
	cmd.Flags().DurationVar(&grace, "grace-period", 0, "in s3: and azblob:, keep blobs younger than `D` (a Go duration: 30m, 2h; default: the larger of 1h and the touch refresh age, 24h)")
	return cmd
}

// pruneLocation parses prune's argument: a location, or a directory.
func pruneLocation(arg string) (location, error) {
	if scheme, _, ok := strings.Cut(arg, ":"); ok && slices.Contains(schemes, scheme) {
		l, err := parseLocation(arg)
		if err != nil {
			return location{}, usagef("%v", err)
		}
		return l, nil
	}
	if arg == "" {
		return location{}, usagef("prune: no directory")
	}
	return location{scheme: schemeOCI, path: arg, tag: defaultTag}, nil
}

func (c *cli) pruneLayout(ctx context.Context, dir string, dryRun bool) error {
	// Open makes a layout where there is none; prune should not.
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
		return errors.Wrapf(err, "%s: not an OCI image layout", dir)
	}
	s, err := ocilayout.OpenContext(ctx, dir)
	if err != nil {
		return err
	}
	defer s.Close()
	var opts []ocilayout.PruneOption
	if dryRun {
		opts = append(opts, ocilayout.WithDryRun())
	}
	waiting := time.AfterFunc(time.Second, func() {
		c.note(fmt.Sprintf("waiting for exports into %s to finish…", dir))
	})
	rep, err := s.Prune(ctx, opts...)
	waiting.Stop()
	if err != nil {
		return errors.Wrapf(err, "%s", dir)
	}
	extra := ""
	if rep.Ingests > 0 {
		extra = "; " + plural(rep.Ingests, "unfinished write")
	}
	c.printPrune(dir, dryRun, rep.Blobs, rep.Bytes, extra)
	return nil
}

// pruneObjectStore prunes an s3: or azblob: location with the grace
// period grace, or the store's default where grace is nil.
func (c *cli) pruneObjectStore(ctx context.Context, l location, dryRun bool, grace *time.Duration) error {
	if grace != nil && *grace < 0 {
		return usagef("prune: --grace-period %s: negative", *grace)
	}
	var rep pruned
	var err error
	if l.scheme == schemeS3 {
		rep, err = pruneIn(ctx, l, grace, dryRun, openS3, (*s3.Store).Prune, s3.WithGracePeriod, s3.WithDryRun)
	} else {
		rep, err = pruneIn(ctx, l, grace, dryRun, openAzblob, (*azblob.Store).Prune, azblob.WithGracePeriod, azblob.WithDryRun)
	}
	if err != nil {
		return err
	}
	// Every config under the prefix counts, whatever its name.
	where := l.scheme + ":" + l.path
	if l.prefix != "" {
		where += "/" + l.prefix
	}
	c.printPrune(where, dryRun, rep.Blobs, rep.Bytes, "; kept "+plural(rep.Kept, "blob"))
	return nil
}

// pruned is what prune prints of an s3 or azblob PruneReport, which both
// have these fields (a field added to one fails pruneIn's conversion).
type pruned struct {
	Blobs []content.Info
	Bytes int64
	Kept  int
}

// pruneIn opens the s3 or azblob store at l with open and prunes it with
// prune (its Store's Prune), with the grace period grace, or the store's
// default where grace is nil, and in a dry run with dryRun; withGrace and
// withDryRun are the store's options. An error of Prune names l.
func pruneIn[S, O any, R ~struct {
	Blobs []content.Info
	Bytes int64
	Kept  int
}](ctx context.Context, l location, grace *time.Duration, dryRun bool,
	open func(context.Context, location, bool) (S, error), prune func(S, context.Context, ...O) (R, error),
	withGrace func(time.Duration) O, withDryRun func() O) (pruned, error) {
	s, err := open(ctx, l, dryRun)
	if err != nil {
		return pruned{}, err
	}
	var opts []O
	if grace != nil {
		opts = append(opts, withGrace(*grace))
	}
	if dryRun {
		opts = append(opts, withDryRun())
	}
	rep, err := prune(s, ctx, opts...)
	if err != nil {
		return pruned{}, errors.Wrapf(err, "%s", l)
	}
	return pruned(rep), nil
}

// printPrune writes a line per blob removed and one that adds them up,
// ending with extra.
func (c *cli) printPrune(where string, dryRun bool, blobs []content.Info, bytes int64, extra string) {
	verb, summary := "removed", "freed"
	if dryRun {
		verb, summary = "would remove", "would free"
	}
	for _, b := range blobs {
		fmt.Fprintf(c.stdout, "%s %s  %s\n", verb, b.Digest, humanBytes(b.Size))
	}
	fmt.Fprintf(c.stdout, "%s: %s %s, %s (%d bytes)%s\n", where, summary, plural(len(blobs), "blob"), humanBytes(bytes), bytes, extra)
}
