package main

import (
	"context"

	"github.com/spf13/cobra"
)

func (c *cli) mergeCommand() *cobra.Command {
	var f *exportFlags
	cmd := locationCommand(&cobra.Command{
		Use:   "merge SRC... DST [--format image-manifest|oci-index|manifest-list] [--concurrency N] [--compression gzip|zstd|uncompressed [--compression-level N] [--force-compression]] [--json]",
		Short: "Merge caches into one",
		Long: `Merge the caches that the SRCs' tags name into one cache at DST: the
union of their records, a record found in several caches once, with the
newest of its results. Flags as for copy; DST's tag moves last.`,
		RunE: c.runLocations(func(ctx context.Context, locs []location) error {
			r, err := c.export(ctx, locs[:len(locs)-1], locs[len(locs)-1], f)
			if err != nil {
				return err
			}
			return r.print(c, f.json)
		}),
	}, minArgs(2))
	f = addExportFlags(cmd)
	return cmd
}
