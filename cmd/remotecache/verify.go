package main

import (
	"context"
	"fmt"

	"github.com/buildcache/remotecache"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

func (c *cli) verifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify SRC",
		Short: "Check that a cache is whole",
		Long: `Check that every blob of the cache that SRC's tag names (the manifest, the
cache config and every layer) is in the store with the size and digest its
descriptor gives, that the config has none of the problems that make an
import refuse it, and that every layer the config names is in the
manifest. Each problem is written to stdout, one per line, and the exit
status is 1. Nothing is written into SRC.`,
		Args:                  exactArgs(1),
		DisableFlagsInUseLine: true,
		Annotations:           map[string]string{footerAnnotation: locations},
		ValidArgsFunction:     completeLocations,
		RunE: c.runE(func(ctx context.Context, args []string) error {
			locs, err := parseLocations(args)
			if err != nil {
				return err
			}
			return c.verify(ctx, locs[0])
		}),
	}
}

func (c *cli) verify(ctx context.Context, l location) error {
	src, err := openSource(ctx, l)
	if err != nil {
		return err
	}
	defer src.Close()
	desc, err := src.manifest(ctx)
	if err != nil {
		return err
	}
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
