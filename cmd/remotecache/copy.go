package main

import (
	"context"

	"github.com/spf13/cobra"
)

func (c *cli) copyCommand() *cobra.Command {
	return c.exportingCommand(&cobra.Command{
		Use:   "copy SRC DST [--format image-manifest|oci-index|manifest-list] [--concurrency N] [--compression gzip|zstd|uncompressed [--compression-level N] [--force-compression]] [--json]",
		Short: "Copy a cache to another location",
		Long: `Copy the cache that SRC's tag names to DST, in the manifest form that
--format gives: image-manifest by default, config-only (the only form they
take) into s3: and azblob: locations. Up to --concurrency layer blobs are
copied at once (4 by default, more where SRC or DST advises it: 16 for a
registry). Blobs DST has already are not copied again. DST's tag moves
last, once everything it names is written. It prints "DST DIGEST FORMAT", or with
--json the manifest's descriptor and the blobs and bytes written and
skipped as one JSON object. Nothing is written into SRC.

With --compression, layers are converted as they are copied: those of
another compression are decompressed and compressed again (zstd at level 3
and gzip at 5 unless --compression-level says; each distinct blob once, in
parallel, before anything is written), and with --force-compression those
already of that compression are recompressed too. A layer whose bytes are
not its diffID's fails the copy, and nothing is written.`,
	}, exactArgs(2))
}

// exportingCommand completes cmd, which exports the caches at its first
// locations (as many as args allows but one) into its last one: copy,
// merge.
func (c *cli) exportingCommand(cmd *cobra.Command, args cobra.PositionalArgs) *cobra.Command {
	var f *exportFlags
	cmd.RunE = c.runLocations(func(ctx context.Context, locs []location) error {
		r, err := c.export(ctx, locs[:len(locs)-1], locs[len(locs)-1], f)
		if err != nil {
			return err
		}
		return r.print(c, f.json)
	})
	f = addExportFlags(cmd)
	return locationCommand(cmd, args)
}
