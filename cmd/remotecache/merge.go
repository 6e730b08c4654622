package main

import "github.com/spf13/cobra"

func (c *cli) mergeCommand() *cobra.Command {
	return c.exportingCommand(&cobra.Command{
		Use:   "merge SRC... DST [--format image-manifest|oci-index|manifest-list] [--concurrency N] [--compression gzip|zstd|uncompressed [--compression-level N] [--force-compression]] [--json]",
		Short: "Merge caches into one",
		Long: `Merge the caches that the SRCs' tags name into one cache at DST: the
union of their records, a record found in several caches once, with the
newest of its results. Flags as for copy; DST's tag moves last.`,
	}, minArgs(2))
}
