// Command convert copies a cache between two OCI layout directories,
// converting its layers to another compression with
// remotecache.WithCompression: what `remotecache copy --compression` does,
// through the library alone. It prints the destination's manifest digest.
//
//	go run ./examples/convert [-compression zstd|gzip|uncompressed] [-level N] [-force] [-format FORM] SRC[:TAG] DST[:TAG]
//
// TAG is "latest" when left out. The source is opened read-only; the
// destination's tag moves last, once everything is written.
// scripts/buildkit-zstd.sh uses it to hand buildkitd a zstd copy of its own
// gzip cache.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/containerd/log"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/ocilayout"
)

func main() {
	comp := flag.String("compression", "zstd", "layer compression: gzip, zstd or uncompressed")
	level := flag.Int("level", 0, "compression level (default: the compression's own)")
	force := flag.Bool("force", false, "recompress layers already of that compression")
	format := flag.String("format", remotecache.FormatImageManifest.String(), "manifest form: image-manifest, oci-index or manifest-list")
	flag.Parse()
	_ = log.SetLevel("error") // containerd's local store warns about fsverity
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "convert: want SRC[:TAG] DST[:TAG]")
		flag.Usage()
		os.Exit(2)
	}
	c, err := remotecache.ParseCompression(*comp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "convert:", err)
		os.Exit(2)
	}
	cc := remotecache.CompressionConfig{Type: c, Force: *force}
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "level" {
			cc.Level = level
		}
	})
	f, err := remotecache.ParseManifestFormat(*format)
	if err != nil {
		fmt.Fprintln(os.Stderr, "convert:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, flag.Arg(0), flag.Arg(1), cc, f); err != nil {
		fmt.Fprintln(os.Stderr, "convert:", err)
		os.Exit(1)
	}
}

// location splits DIR[:TAG].
func location(s string) (dir, tag string) {
	if i := strings.LastIndex(s, ":"); i > 0 && !strings.Contains(s[i:], "/") {
		return s[:i], s[i+1:]
	}
	return s, "latest"
}

func run(ctx context.Context, srcLoc, dstLoc string, c remotecache.CompressionConfig, f remotecache.ManifestFormat) error {
	srcDir, srcTag := location(srcLoc)
	dstDir, dstTag := location(dstLoc)
	src, err := ocilayout.Open(srcDir, ocilayout.WithReadOnly())
	if err != nil {
		return err
	}
	defer src.Close()
	desc, err := src.Resolve(ctx, srcTag)
	if err != nil {
		return err
	}
	dst, err := ocilayout.OpenContext(ctx, dstDir)
	if err != nil {
		return err
	}
	defer dst.Close()

	exp, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(f), remotecache.WithCompression(c))
	if err != nil {
		return err
	}
	if err := remotecache.Import(ctx, src, desc, exp); err != nil {
		return err
	}
	res, err := exp.Finalize(ctx)
	if err != nil {
		return err
	}
	mdesc, ok, err := remotecache.ResponseManifest(res)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("nothing to write: no record has all its layer blobs")
	}
	if err := dst.Tag(ctx, dstTag, mdesc); err != nil {
		return err
	}
	fmt.Println(mdesc.Digest)
	return nil
}
