package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/buildcache/remotecache/ocilayout"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

var pruneCommand = &command{
	name: "prune",
	args: "DIR [--dry-run]",
	summary: `Remove from the OCI layout DIR (or oci:DIR) every blob that no tag reaches,
and the leftovers of unfinished writes, and say how many blobs and bytes
that freed. It waits for exports into DIR in progress to finish first.
--dry-run says what would be removed and removes nothing.`,
	nargs: exactly(1),
	flags: func(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
		dryRun := fs.Bool("dry-run", false, "")
		return func(ctx context.Context, c *cli, args []string) error {
			dir := args[0]
			if rest, ok := strings.CutPrefix(dir, schemeOCI+":"); ok {
				dir = rest
			} else if strings.HasPrefix(dir, schemeRegistry+":") {
				return usagef(nil, "prune: %s: only OCI layout directories can be pruned", dir)
			}
			if dir == "" {
				return usagef(nil, "prune: no directory")
			}
			return c.prune(ctx, dir, *dryRun)
		}
	},
}

func (c *cli) prune(ctx context.Context, dir string, dryRun bool) error {
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
	verb, summary := "removed", "freed"
	if dryRun {
		opts = append(opts, ocilayout.WithDryRun())
		verb, summary = "would remove", "would free"
	}
	waiting := time.AfterFunc(time.Second, func() {
		if !c.quiet {
			fmt.Fprintf(c.stderr, "waiting for exports into %s to finish…\n", dir)
		}
	})
	rep, err := s.Prune(ctx, opts...)
	waiting.Stop()
	if err != nil {
		return errors.Wrapf(err, "%s", dir)
	}
	for _, b := range rep.Blobs {
		fmt.Fprintf(c.stdout, "%s %s  %s\n", verb, b.Digest, humanBytes(b.Size))
	}
	fmt.Fprintf(c.stdout, "%s: %s %s, %s (%d bytes)", dir, summary, plural(len(rep.Blobs), "blob"), humanBytes(rep.Bytes), rep.Bytes)
	if rep.Ingests > 0 {
		fmt.Fprintf(c.stdout, "; %s", plural(rep.Ingests, "unfinished write"))
	}
	fmt.Fprintln(c.stdout)
	return nil
}
