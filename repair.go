package remotecache

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

type repairOptions struct {
	imports []ImportOption
	exports []ExportOption
	dryRun  bool
}

// RepairOption configures Repair.
type RepairOption func(*repairOptions) error

// WithRepairImport gives Repair options for reading the cache (as for
// Import: WithMaxBlobSize). Default: none.
func WithRepairImport(opts ...ImportOption) RepairOption {
	return func(o *repairOptions) error {
		o.imports = append(o.imports, opts...)
		return nil
	}
}

// WithRepairExport gives Repair options for writing the repaired cache (as
// for NewExporter: WithConcurrency, WithProgress, WithRef). They apply
// after the source's manifest form, so a WithManifestFormat among them
// changes the form. WithConcurrency also bounds how many blobs Repair asks
// the store about at once. Default: none.
func WithRepairExport(opts ...ExportOption) RepairOption {
	return func(o *repairOptions) error {
		o.exports = append(o.exports, opts...)
		return nil
	}
}

// WithRepairDryRun makes Repair find what it would drop and write
// nothing; dst may then be nil. Default: off.
func WithRepairDryRun() RepairOption {
	return func(o *repairOptions) error {
		o.dryRun = true
		return nil
	}
}

// MissingBlob is a layer blob that a cache names and its store does not
// have.
type MissingBlob struct {
	Digest digest.Digest `json:"digest"`
	// Size is the size its descriptor gives, -1 when NotListed.
	Size int64 `json:"size"`
	// NotListed: the config names the blob but the manifest does not list
	// it, so no reader of the cache can find it.
	NotListed bool `json:"notListed,omitempty"`
}

// RepairReport says what Repair found and did.
type RepairReport struct {
	// Format is the form of the source's manifest, and of the repaired
	// cache's.
	Format ManifestFormat `json:"format"`
	// Missing lists the blobs the store does not have, in the order of
	// the manifest's layers (then those it does not list).
	Missing []MissingBlob `json:"missing"`
	// Dropped lists the results that name a missing blob, in the order of
	// the source config's records: the results Repair leaves out.
	Dropped []DroppedResult `json:"dropped"`
	// Before counts the source config; After the repaired one, as written
	// (so without results or records the export leaves out on its own
	// terms: see CacheChains.Marshal). Bytes are counted with the sizes
	// the manifest gives.
	Before CacheCounts `json:"before"`
	After  CacheCounts `json:"after"`
	// Written tells whether the repaired cache was written; Manifest is
	// then its manifest's descriptor (its config's in the config-only
	// form), for the caller to move the tag to.
	Written  bool               `json:"written"`
	Manifest ocispec.Descriptor `json:"manifest"`
}

// NeedsRepair tells whether the cache misses blobs.
func (r *RepairReport) NeedsRepair() bool { return len(r.Missing) > 0 }

// Repair rewrites the cache at desc in src without the results whose
// blobs src does not have, into dst, and returns what it found and did.
// It is the library side of "remotecache verify --repair LOC": src and dst
// are then one store (an ocilayout.Store, a registry.Remote, any store
// that is a content.Provider and a content.Ingester).
//
// It reads the manifest (any form, ReadManifest) and the config, and asks
// src about every layer blob the manifest lists (content.InfoProvider's
// Info, else opening it), bounded by the export's WithConcurrency. A blob
// is missing only when src says errdefs.ErrNotFound, or when the config
// names it and the manifest does not list it. Any other error (a 503, a
// timeout, a refused credential), a blob whose size is not its
// descriptor's, or a config with structural problems (CheckConfig) fails
// Repair, naming the blob, before anything is written. Blobs are not read
// through: a blob that is there but damaged is Verify's to find.
//
// When nothing is missing, Repair writes nothing and says so (Written
// false). Otherwise it rebuilds the graph without the results that name a
// missing blob (their records stay) and exports it into dst in the
// source's manifest form, as Finalize does: layers (those dst has are
// skipped), the config, the manifest. It does not move any tag: the caller
// points the tag at Manifest, last (a registry.Remote at a tag moves it
// with the manifest write, which is last). When every result is dropped
// there is nothing left to export: that is an error of class
// errdefs.ErrFailedPrecondition, with the report filled in, and nothing
// is written.
func Repair(ctx context.Context, src content.Provider, desc ocispec.Descriptor, dst content.Ingester, opts ...RepairOption) (_ RepairReport, err error) {
	defer ensureClass(&err)
	var o repairOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return RepairReport{}, errors.Wrap(err, "repair")
		}
	}
	iopts, err := newImportOptions("repair", src, o.imports)
	if err != nil {
		return RepairReport{}, err
	}
	if dst == nil && !o.dryRun {
		return RepairReport{}, errors.Wrap(errdefs.ErrInvalidArgument, "repair: nil destination")
	}
	m, cfg, err := readCache(ctx, src, desc, iopts)
	if err != nil {
		return RepairReport{}, errors.Wrap(err, "repair")
	}
	if _, err := checked(cfg, "repair: cache config "+m.Config.Digest.String()); err != nil {
		return RepairReport{}, err
	}
	eo := exportOptions{concurrency: 4}
	exportOpts := append([]ExportOption{WithManifestFormat(m.Format)}, o.exports...)
	for _, opt := range exportOpts {
		if err := opt(&eo); err != nil {
			return RepairReport{}, errors.Wrap(err, "repair")
		}
	}

	rep := RepairReport{Format: m.Format, Missing: []MissingBlob{}, Dropped: []DroppedResult{}}
	infos, err := probeBlobs(ctx, src, m.Layers, eo.concurrency)
	if err != nil {
		return rep, errors.Wrap(err, "repair")
	}
	dp := make(DescriptorProvider, len(m.Layers))
	missing := map[digest.Digest]bool{}
	sizes := m.BlobSizes()
	for _, l := range m.Layers {
		if _, ok := infos[l.Digest]; ok {
			dp[l.Digest] = DescriptorProviderPair{Descriptor: l, Provider: knownBlobs{src, infos}}
		} else if !missing[l.Digest] {
			missing[l.Digest] = true
			rep.Missing = append(rep.Missing, MissingBlob{Digest: l.Digest, Size: l.Size})
		}
	}
	for _, l := range cfg.Layers {
		if _, ok := dp[l.Blob]; !ok && !missing[l.Blob] {
			missing[l.Blob] = true
			rep.Missing = append(rep.Missing, MissingBlob{Digest: l.Blob, Size: -1, NotListed: true})
		}
	}
	rep.Before = countConfig(cfg, sizes)
	rep.Dropped = droppedForMissing(cfg, missing)
	if len(rep.Missing) == 0 {
		rep.After = rep.Before
		return rep, nil
	}

	exp, err := NewExporter(dstOrDiscard(dst), exportOpts...)
	if err != nil {
		return rep, errors.Wrap(err, "repair")
	}
	if err := parseConfig(cfg, dp, exp); err != nil {
		return rep, errors.Wrapf(err, "repair: cache config %s", m.Config.Digest)
	}
	after, _, err := exp.Chains().Marshal(ctx)
	if err != nil {
		return rep, errors.Wrap(err, "repair")
	}
	rep.After = countConfig(after, sizes)
	if len(after.Layers) == 0 {
		return rep, errors.Wrapf(errdefs.ErrFailedPrecondition, "repair: every result of cache %s names a missing blob: nothing left to write", desc.Digest)
	}
	if o.dryRun {
		return rep, nil
	}
	res, err := exp.Finalize(ctx)
	if err != nil {
		return rep, errors.Wrap(err, "repair")
	}
	desc, ok, err := ResponseManifest(res)
	if err != nil {
		return rep, errors.Wrapf(errdefs.ErrInternal, "repair: %v", err)
	}
	if !ok {
		return rep, errors.Wrapf(errdefs.ErrInternal, "repair: Finalize's response %v: no descriptor", res)
	}
	rep.Manifest = desc
	rep.Written = true
	return rep, nil
}

// probeBlobs asks p about each blob of layers, at most limit at once, and
// returns what it says of those it has. Not found leaves a blob out; any
// other error, or a size that is not the descriptor's, fails.
func probeBlobs(ctx context.Context, p content.Provider, layers []ocispec.Descriptor, limit int) (map[digest.Digest]content.Info, error) {
	var mu sync.Mutex
	infos := make(map[digest.Digest]content.Info, len(layers))
	seen := make(map[digest.Digest]bool, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, l := range layers {
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		g.Go(func() error {
			info, err := probeBlob(gctx, p, l)
			if errdefs.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return errors.Wrapf(err, "layer %s", l.Digest)
			}
			if info.Size != l.Size {
				return errors.Wrapf(errdefs.ErrFailedPrecondition, "layer %s: store has %d bytes, descriptor says %d", l.Digest, info.Size, l.Size)
			}
			mu.Lock()
			infos[l.Digest] = info
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return infos, ctx.Err()
}

// probeBlob asks p about desc: Info if it can answer, else it opens it.
func probeBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (content.Info, error) {
	if ip, ok := p.(content.InfoProvider); ok {
		return ip.Info(ctx, desc.Digest)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return content.Info{}, err
	}
	defer ra.Close()
	return content.Info{Digest: desc.Digest, Size: ra.Size()}, nil
}

// droppedForMissing lists the results of cfg that name a missing blob.
func droppedForMissing(cfg *CacheConfig, missing map[digest.Digest]bool) []DroppedResult {
	out := []DroppedResult{}
	if len(missing) == 0 {
		return out
	}
	w := newLayerWalk(cfg)
	for i := range cfg.Records {
		rec := &cfg.Records[i]
		for j := range len(rec.Results) + len(rec.ChainedResults) {
			var layers []int
			if j < len(rec.Results) {
				layers = w.resultLayers(i, j)
			} else {
				// Parse reads a chained result's listed layers only.
				layers = rec.ChainedResults[j-len(rec.Results)].LayerIndexes
			}
			blobs := blobsOf(cfg, layers)
			var gone []digest.Digest
			for _, b := range blobs {
				if missing[b] {
					gone = append(gone, b)
				}
			}
			if len(gone) > 0 {
				out = append(out, DroppedResult{Record: recordRef(cfg, i), Result: j, CreatedAt: resultTime(rec, j), Blobs: blobs, Reason: DroppedMissing, Missing: gone})
			}
		}
	}
	return out
}

// knownBlobs serves blobs from a provider, but answers Info from what
// Repair already asked it, so that the export's availability check
// (Marshal's) does not ask again.
type knownBlobs struct {
	content.Provider
	infos map[digest.Digest]content.Info
}

func (k knownBlobs) Info(_ context.Context, dgst digest.Digest) (content.Info, error) {
	if info, ok := k.infos[dgst]; ok {
		return info, nil
	}
	return content.Info{}, errors.Wrapf(errdefs.ErrNotFound, "blob %s", dgst)
}

// dstOrDiscard is dst, or for a dry run without one an ingester that
// refuses every write (a dry run never calls Finalize).
func dstOrDiscard(dst content.Ingester) content.Ingester {
	if dst != nil {
		return dst
	}
	return noIngester{}
}

type noIngester struct{}

func (noIngester) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	return nil, errors.Wrap(errdefs.ErrFailedPrecondition, "repair: dry run: no writes")
}
