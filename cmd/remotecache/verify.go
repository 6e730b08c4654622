package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/buildcache/remotecache"
	"github.com/pkg/errors"
)

var verifyCommand = &command{
	name: "verify",
	args: "SRC",
	summary: `Check that every blob of the cache that SRC's tag names (the manifest, the
cache config and every layer) is in the store with the size and digest its
descriptor gives, and that every layer the config names is in the manifest.
Each problem is written to stdout, one per line, and the exit status is 1.
Nothing is written into SRC.`,
	nargs: exactly(1),
	flags: func(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
		return func(ctx context.Context, c *cli, args []string) error {
			locs, err := parseLocations(args)
			if err != nil {
				return err
			}
			return c.verify(ctx, locs[0])
		}
	},
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
	fmt.Fprintf(c.stdout, "%s: ok: manifest %s, config and %s\n", l, desc.Digest, plural(len(m.Layers), "layer blob"))
	return nil
}
