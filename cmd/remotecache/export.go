package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"

	"github.com/buildcache/remotecache"
)

// exportFlags are the flags of the commands that write a cache: copy,
// merge (and trim).
type exportFlags struct {
	format      string
	concurrency int
	json        bool
	// given tells whether a flag was on the command line: without
	// --concurrency the library picks (more for a registry, see
	// remotecache.ConcurrencyAdvisor).
	given func(name string) bool

	compression string // --compression: "" to copy layers as they are
	level       int    // --compression-level, if given
	force       bool   // --force-compression
}

func addExportFlags(cmd *cobra.Command) *exportFlags {
	fs := cmd.Flags()
	f := &exportFlags{given: fs.Changed}
	fs.StringVar(&f.format, "format", "", "write the manifest as `FORM`: image-manifest (the default), oci-index or manifest-list; config-only into s3: and azblob: (their only form)")
	fs.IntVar(&f.concurrency, "concurrency", remotecache.DefaultConcurrency, "copy up to `N` layer blobs at once; without it, 4 or what SRC or DST advises (16 for a registry)")
	fs.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	fs.StringVar(&f.compression, "compression", "", "convert layers to `TYPE` as they are copied: gzip, zstd or uncompressed (default: copy them as they are)")
	fs.IntVar(&f.level, "compression-level", 0, "compress at level `N`: gzip -2 to 9 (default 5), zstd 1 to 22 (default 3); needs --compression gzip or zstd")
	fs.BoolVar(&f.force, "force-compression", false, "recompress at the level asked the layers that already have the --compression asked too")
	_ = cmd.RegisterFlagCompletionFunc("compression", cobra.FixedCompletions(
		[]string{"gzip", "zstd", "uncompressed"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(
		[]string{"image-manifest", "oci-index", "manifest-list", "config-only"}, cobra.ShellCompDirectiveNoFileComp))
	return f
}

// check checks what the flags say on their own.
func (f *exportFlags) check() error {
	if f.concurrency < 1 {
		return usagef("--concurrency %d: must be at least 1", f.concurrency)
	}
	_, err := f.compressionConfig()
	return err
}

// compressionConfig is the conversion that --compression,
// --compression-level and --force-compression ask for, or nil without
// --compression.
func (f *exportFlags) compressionConfig() (*remotecache.CompressionConfig, error) {
	if f.compression == "" {
		switch {
		case f.given("compression-level"):
			return nil, usagef("--compression-level %d: needs --compression gzip or zstd", f.level)
		case f.force:
			return nil, usagef("--force-compression: needs --compression")
		}
		return nil, nil
	}
	t, err := remotecache.ParseCompression(f.compression)
	if err != nil {
		return nil, usagef("--compression %s: want gzip, zstd or uncompressed", f.compression)
	}
	cc := &remotecache.CompressionConfig{Type: t, Force: f.force}
	if f.given("compression-level") {
		lo, hi := remotecache.MinGzipLevel, remotecache.MaxGzipLevel
		switch t {
		case remotecache.CompressionZstd:
			lo, hi = remotecache.MinZstdLevel, remotecache.MaxZstdLevel
		case remotecache.CompressionUncompressed:
			return nil, usagef("--compression-level %d: an uncompressed layer has no level", f.level)
		}
		if f.level < lo || f.level > hi {
			return nil, usagef("--compression-level %d: %s takes %d to %d", f.level, t, lo, hi)
		}
		cc.Level = &f.level
	}
	return cc, nil
}

// options are the exporter's options that the flags give, after format
// and progress. Without --concurrency the library picks how many layers
// are copied at once.
func (f *exportFlags) options() ([]remotecache.ExportOption, error) {
	var opts []remotecache.ExportOption
	if f.given("concurrency") {
		opts = append(opts, remotecache.WithConcurrency(f.concurrency))
	}
	cc, err := f.compressionConfig()
	if err != nil {
		return nil, err
	}
	if cc != nil {
		opts = append(opts, remotecache.WithCompression(*cc))
	}
	return opts, nil
}

// manifestFormat is the form to write into dst: --format if given, else
// the config-only form for an object store and an image manifest for the
// others. An object store takes only the config-only form, and only an
// object store takes it.
func (f *exportFlags) manifestFormat(dst location) (remotecache.ManifestFormat, error) {
	if f.format == "" {
		if dst.objectStore() {
			return remotecache.FormatConfigOnly, nil
		}
		return remotecache.FormatImageManifest, nil
	}
	format, err := remotecache.ParseManifestFormat(f.format)
	if err != nil {
		return 0, usagef("--format: %v", err)
	}
	switch {
	case dst.objectStore() && format != remotecache.FormatConfigOnly:
		return 0, usagef("--format %s: %s: an %s: location takes only the config-only form", format, dst, dst.scheme)
	case !dst.objectStore() && format == remotecache.FormatConfigOnly:
		return 0, usagef("--format config-only: %s: only s3: and azblob: locations take it (it has no manifest to tag)", dst)
	}
	return format, nil
}

// exportResult is what copy and merge print; its JSON is the output of
// --json.
type exportResult struct {
	// Destination is the location written, with its tag or names.
	Destination string `json:"destination"`
	Format      string `json:"format"`
	// Manifest is the descriptor of the manifest written (of the cache
	// config, in the config-only form): what the tag names.
	Manifest ocispec.Descriptor `json:"manifest"`
	// Blobs counts the blobs of the cache (layers, config, manifest):
	// those written and those the destination had already.
	Blobs        int   `json:"blobs"`
	Written      int   `json:"written"`
	Skipped      int   `json:"skipped"`
	BytesWritten int64 `json:"bytesWritten"`
	BytesSkipped int64 `json:"bytesSkipped"`
}

// print writes the result: "DST DIGEST FORMAT", or its JSON.
func (r *exportResult) print(c *cli, asJSON bool) error {
	if asJSON {
		return writeJSON(c.stdout, r)
	}
	_, err := fmt.Fprintf(c.stdout, "%s %s %s\n", r.Destination, r.Manifest.Digest, r.Format)
	return err
}

// export reads every source and writes their union into the destination,
// moving its tag last.
func (c *cli) export(ctx context.Context, srcLocs []location, dstLoc location, f *exportFlags) (*exportResult, error) {
	format, err := f.manifestFormat(dstLoc)
	if err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	// Sources first, so that one that cannot be read leaves no new empty
	// layout behind at DST.
	caches, closeAll, err := readCaches(ctx, srcLocs)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	return c.write(ctx, caches, dstLoc, format, f)
}

// write adds the configs of caches, each with the blobs of its store, to
// one exporter, writes the cache into dstLoc in the given form and moves
// dstLoc's tag to it, with the options f gives (concurrency, compression).
func (c *cli) write(ctx context.Context, caches []*storedCache, dstLoc location, format remotecache.ManifestFormat, f *exportFlags) (*exportResult, error) {
	fopts, err := f.options()
	if err != nil {
		return nil, err
	}
	var pl planner
	for _, sc := range caches {
		pl.add(sc)
	}
	dst, err := openDestination(ctx, dstLoc)
	if err != nil {
		return nil, err
	}
	defer dst.Close()

	t := &tally{failures: &c.failures}
	sink, stop := c.progress(pl.plan(format))
	defer stop(false)
	t.next = sink
	opts := append([]remotecache.ExportOption{remotecache.WithManifestFormat(format), remotecache.WithProgress(t)}, fopts...)
	exp, err := remotecache.NewExporter(dst, opts...)
	if err != nil {
		return nil, err
	}
	for _, sc := range caches {
		done := remotecache.OneOff(t, "importing "+sc.loc.String())
		if err := done(remotecache.ParseConfig(sc.cfg, sc.m.Descriptors(sc.src), exp)); err != nil {
			return nil, errors.Wrapf(err, "%s: cache config %s", sc.loc, sc.m.Config.Digest)
		}
	}
	resp, err := exp.Finalize(ctx)
	if err != nil {
		return nil, errors.Wrapf(err, "%s", dstLoc)
	}
	desc, ok, err := remotecache.ResponseManifest(resp)
	if err != nil {
		return nil, errors.Wrapf(err, "%s", dstLoc)
	}
	if !ok {
		return nil, errors.Errorf("%s: nothing to write: no record of the source has all its layer blobs", dstLoc)
	}
	done := remotecache.OneOff(t, "tagging "+dstLoc.String())
	if err := done(dst.tag(ctx, desc)); err != nil {
		return nil, errors.Wrapf(err, "%s", dstLoc)
	}
	stop(true)
	r := t.result()
	r.Destination, r.Format, r.Manifest = dstLoc.String(), format.String(), desc
	return &r, nil
}

// planner adds up the blobs the caches' configs name, for the overall
// bar.
type planner struct {
	seen  map[digest.Digest]bool
	blobs int
	bytes int64
	meta  int64 // the largest config and manifest: one of each is written
}

// add adds the blobs a cache's config names.
func (p *planner) add(sc *storedCache) {
	sizes := sc.blobSizes()
	for _, l := range sc.cfg.Layers {
		p.addBlob(l.Blob, sizes[l.Blob])
	}
	p.addMeta(sc.m)
}

// addManifest adds the blobs a manifest lists.
func (p *planner) addManifest(m *remotecache.Manifest) {
	for _, l := range m.Layers {
		p.addBlob(l.Digest, l.Size)
	}
	p.addMeta(m)
}

func (p *planner) addBlob(d digest.Digest, size int64) {
	if p.seen == nil {
		p.seen = map[digest.Digest]bool{}
	}
	if !p.seen[d] {
		p.seen[d] = true
		p.blobs++
		p.bytes += max(size, 0)
	}
}

// addMeta counts a config and a manifest the size of m's.
func (p *planner) addMeta(m *remotecache.Manifest) {
	meta := m.Config.Size
	if m.Format != remotecache.FormatConfigOnly {
		meta += m.Descriptor.Size
	}
	p.meta = max(p.meta, meta)
}

// plan is what an export in the given form writes: the blobs, a config
// and, but in the config-only form, a manifest.
func (p *planner) plan(format remotecache.ManifestFormat) plan {
	pl := plan{blobs: p.blobs + 2, bytes: p.bytes + p.meta}
	if format == remotecache.FormatConfigOnly {
		pl.blobs--
	}
	return pl
}

// tally counts the blobs an export wrote and skipped, keeps the errors of
// the steps that failed, and passes every event on to next.
type tally struct {
	next     remotecache.ProgressSink
	failures *failures

	mu sync.Mutex
	r  exportResult
}

func (t *tally) Progress(e remotecache.Event) {
	if !e.Completed.IsZero() {
		if e.Err != nil {
			t.failures.add(e.Err)
		} else if isBlobStep(e.ID) {
			t.mu.Lock()
			t.r.Blobs++
			if e.Skipped {
				t.r.Skipped++
				t.r.BytesSkipped += e.Total
			} else {
				t.r.Written++
				t.r.BytesWritten += e.Total
			}
			t.mu.Unlock()
		}
	}
	if t.next != nil {
		t.next.Progress(e)
	}
}

func (t *tally) result() exportResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.r
}

// writeJSON writes v as indented JSON.
func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	dt, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(dt, '\n'))
	return err
}
