package remotecache

import (
	"bytes"
	"context"
	_ "crypto/sha256" // digests of manifests and configs; validateDigest's fast path
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// DefaultMaxBlobSize is the default limit on the size of the manifest and of
// the cache config that Import reads: far above the 1 MiB that BuildKit's
// importer accepts, low enough that a hostile descriptor cannot make Import
// allocate without bound.
const DefaultMaxBlobSize = 64 << 20

type importOptions struct {
	maxBlobSize int64
}

// ImportOption configures Import.
type ImportOption func(*importOptions) error

// WithMaxBlobSize sets the largest manifest and cache config, in bytes, that
// Import reads. Default: DefaultMaxBlobSize (64 MiB); n must be at least 1.
func WithMaxBlobSize(n int64) ImportOption {
	return func(o *importOptions) error {
		if n < 1 {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "max blob size %d: must be at least 1", n)
		}
		o.maxBlobSize = n
		return nil
	}
}

// Import reads the cache that the manifest desc points at and adds its
// records to t, dependencies first.
//
// The manifest may be any of the three forms Finalize writes (an OCI image
// manifest whose config is the cache config, an OCI image index or a Docker
// manifest list listing the layers and the cache config), or a Docker image
// manifest, which BuildKit reads too. The form is read from the blob (its
// mediaType field, checked against its shape), not from desc.MediaType. The manifest and the config are
// checked against their descriptors' size and digest, and must not be
// larger than the limit that WithMaxBlobSize sets. Layer blobs are not read:
// each result's Remote serves them from provider.
//
// Bad input is an error of class errdefs.ErrInvalidArgument, a missing
// blob or cache config one of class errdefs.ErrNotFound; each says which
// blob, record or layer is at fault.
func Import(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, t Target, opts ...ImportOption) error {
	o := importOptions{maxBlobSize: DefaultMaxBlobSize}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return errors.Wrap(err, "import")
		}
	}
	if provider == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "import: nil provider")
	}
	if t == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "import: nil target")
	}

	mdt, err := readBlob(ctx, provider, desc, o.maxBlobSize, "manifest")
	if err != nil {
		return err
	}
	configDesc, layers, err := parseManifest(mdt)
	if err != nil {
		return errors.Wrapf(err, "manifest %s", desc.Digest)
	}
	cdt, err := readBlob(ctx, provider, configDesc, o.maxBlobSize, "cache config")
	if err != nil {
		return errors.Wrapf(err, "manifest %s", desc.Digest)
	}

	dp := make(DescriptorProvider, len(layers))
	for _, l := range layers {
		dp[l.Digest] = DescriptorProviderPair{Descriptor: l, Provider: provider}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := Parse(cdt, dp, t); err != nil {
		return errors.Wrapf(err, "manifest %s: cache config %s", desc.Digest, configDesc.Digest)
	}
	return nil
}

// readBlob reads the blob desc, of at most max bytes, and checks that the
// provider's bytes are the descriptor's. what names the blob in errors.
func readBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor, max int64, what string) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, invalidf(err, "%s descriptor: digest %q", what, desc.Digest)
	}
	if desc.Size < 0 {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "%s %s: negative size %d", what, desc.Digest, desc.Size)
	}
	if desc.Size > max {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "%s %s: size %d is over the limit of %d bytes", what, desc.Digest, desc.Size, max)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, errors.Wrapf(err, "reading %s %s", what, desc.Digest)
	}
	defer ra.Close()
	if n := ra.Size(); n != desc.Size {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "%s %s: store has %d bytes, descriptor says %d", what, desc.Digest, n, desc.Size)
	}
	buf := make([]byte, desc.Size)
	if n, err := ra.ReadAt(buf, 0); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, errors.Wrapf(err, "reading %s %s at offset %d", what, desc.Digest, n)
	}
	if got := desc.Digest.Algorithm().FromBytes(buf); got != desc.Digest {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "%s %s: store has bytes of digest %s", what, desc.Digest, got)
	}
	return buf, nil
}

// manifestBlob has the fields of all three manifest forms. Pointers tell an
// absent field from an empty one.
type manifestBlob struct {
	MediaType string                `json:"mediaType"`
	Config    *ocispec.Descriptor   `json:"config"`
	Layers    *[]ocispec.Descriptor `json:"layers"`
	Manifests *[]ocispec.Descriptor `json:"manifests"`
}

// parseManifest finds the cache config and the layers in a manifest of any
// form. The form is told by the blob's mediaType field and checked against
// its shape; without a mediaType, the shape decides.
func parseManifest(dt []byte) (ocispec.Descriptor, []ocispec.Descriptor, error) {
	var m manifestBlob
	if err := json.Unmarshal(dt, &m); err != nil {
		return ocispec.Descriptor{}, nil, invalidf(err, "malformed JSON")
	}
	manifestShaped := m.Config != nil || m.Layers != nil
	indexShaped := m.Manifests != nil
	if manifestShaped && indexShaped {
		return ocispec.Descriptor{}, nil, errors.Wrap(errdefs.ErrInvalidArgument, "has both config or layers (of a manifest) and manifests (of an index)")
	}
	var isIndex bool
	switch m.MediaType {
	case ocispec.MediaTypeImageManifest, images.MediaTypeDockerSchema2Manifest:
		if indexShaped {
			return ocispec.Descriptor{}, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "media type %s, but manifests (of an index)", m.MediaType)
		}
	case ocispec.MediaTypeImageIndex, images.MediaTypeDockerSchema2ManifestList:
		if manifestShaped {
			return ocispec.Descriptor{}, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "media type %s, but config or layers (of a manifest)", m.MediaType)
		}
		isIndex = true
	case "":
		if !manifestShaped && !indexShaped {
			return ocispec.Descriptor{}, nil, errors.Wrap(errdefs.ErrInvalidArgument, "unknown manifest form: no mediaType, config, layers or manifests")
		}
		isIndex = indexShaped
	default:
		return ocispec.Descriptor{}, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "unknown manifest media type %q", m.MediaType)
	}

	var (
		config ocispec.Descriptor
		layers []ocispec.Descriptor
	)
	if isIndex {
		configAt := -1
		if m.Manifests != nil {
			for i, d := range *m.Manifests {
				if d.MediaType != CacheConfigMediaTypeV0 {
					continue
				}
				if configAt >= 0 {
					return ocispec.Descriptor{}, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "manifests %d and %d are both cache configs", configAt, i)
				}
				configAt = i
			}
			if configAt >= 0 {
				ms := *m.Manifests
				config = ms[configAt]
				layers = make([]ocispec.Descriptor, 0, len(ms)-1)
				layers = append(append(layers, ms[:configAt]...), ms[configAt+1:]...)
			}
		}
		if configAt < 0 {
			return ocispec.Descriptor{}, nil, errors.Wrapf(errdefs.ErrNotFound, "no manifest of media type %s: missing cache config", CacheConfigMediaTypeV0)
		}
	} else {
		if m.Config == nil || (m.Config.Digest == "" && m.Config.MediaType == "") {
			return ocispec.Descriptor{}, nil, errors.Wrap(errdefs.ErrNotFound, "no config: missing cache config")
		}
		config = *m.Config
		if config.MediaType != CacheConfigMediaTypeV0 {
			return ocispec.Descriptor{}, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "config %s has media type %q, want %s", config.Digest, config.MediaType, CacheConfigMediaTypeV0)
		}
		if m.Layers != nil {
			layers = *m.Layers
		}
	}
	for i, l := range layers {
		if err := l.Digest.Validate(); err != nil {
			return ocispec.Descriptor{}, nil, invalidf(err, "layer %d: digest %q", i, l.Digest)
		}
		if l.Size < 0 {
			return ocispec.Descriptor{}, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d (%s): negative size %d", i, l.Digest, l.Size)
		}
	}
	return config, layers, nil
}

// Parse adds the records of the cache config configJSON to t, each after
// the records its inputs link from, and returns the first error. Results
// are read from both forms of the config (a top layer with its parents, or
// a list of layers); each becomes a Result whose Remote lists the layer
// descriptors from provider, base first, and reads them from provider. A
// result with a blob that provider does not have is dropped, its record
// kept. Results on one layer chain share its descriptors' array (each
// slice's capacity is cut to its length, so appending copies): a Target
// must not change the descriptors in place.
//
// When t does not export a record (Add returns false), its links are
// dropped from the records that link from it; a record left with an empty
// input slot is then not added either.
//
// Bad input is an error of class errdefs.ErrInvalidArgument that names the
// record or layer at fault: a malformed config, an invalid digest, an index
// out of range, an empty input slot, a loop among records or among layers.
// Parse uses no recursion, so chains of any depth work.
func Parse(configJSON []byte, provider DescriptorProvider, t Target) error {
	if t == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "parse: nil target")
	}
	// Unmarshal appends to a slice with room: sizing the two big slices
	// saves regrowing them. Each "digest" key has one 'g' and each "blob"
	// key one 'o', letters that no hex digest and no other key of the
	// format but "selector" and "records" has, so counting them (a fast
	// single-byte count) bounds the number of records and layers. The
	// bound is capped by how many valid entries fit in the input, so that
	// a hostile input cannot make this allocate much more than its size.
	maxEntries := len(configJSON) / minEntryJSON
	cfg := CacheConfig{
		Layers:  make([]CacheLayer, 0, min(bytes.Count(configJSON, []byte{'o'}), maxEntries)),
		Records: make([]CacheRecord, 0, min(bytes.Count(configJSON, []byte{'g'}), maxEntries)),
	}
	if err := decodeConfigInto(configJSON, &cfg); err != nil {
		return invalidf(err, "malformed JSON")
	}
	p := parser{cfg: &cfg, provider: provider, t: t}
	if err := p.checkLayers(); err != nil {
		return err
	}
	if err := p.checkRecords(); err != nil {
		return err
	}
	if err := p.buildChains(); err != nil {
		return err
	}
	return p.addRecords()
}

// minEntryJSON is the length of the shortest valid layer or record:
// {"blob":"sha256:<64 hex>"}.
const minEntryJSON = len(`{"blob":"sha256:"}`) + 64

// Visit states of records and layers.
const (
	unvisited uint8 = iota
	onPath
	visited
)

type parser struct {
	cfg      *CacheConfig
	provider DescriptorProvider
	t        Target

	// chains[i] is the chain of layer i, base first, or nil when one of
	// its blobs is not in provider. Chains share backing arrays: each is
	// handed out with its capacity cut to its length.
	chains [][]ocispec.Descriptor

	// Totals over all records, to allocate in bulk.
	nslots, nlinks, nresults int
}

// checkLayers checks each layer's blob digest and parent index.
func (p *parser) checkLayers() error {
	n := len(p.cfg.Layers)
	for i, l := range p.cfg.Layers {
		if err := validateDigest(l.Blob); err != nil {
			return invalidf(err, "layer %d: blob %q", i, l.Blob)
		}
		if l.ParentIndex < -1 || l.ParentIndex >= n {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d: parent index %d out of range", i, l.ParentIndex)
		}
	}
	return nil
}

// checkRecords checks everything about each record but loops.
func (p *parser) checkRecords() error {
	nrec, nlayers := len(p.cfg.Records), len(p.cfg.Layers)
	for i := range p.cfg.Records {
		r := &p.cfg.Records[i]
		if err := validateDigest(r.Digest); err != nil {
			return invalidf(err, "record %d: digest %q", i, r.Digest)
		}
		for j, slot := range r.Inputs {
			if len(slot) == 0 {
				return errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: input %d is empty", i, j)
			}
			for k, in := range slot {
				if in.LinkIndex < 0 || in.LinkIndex >= nrec {
					return errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: input %d link %d: record index %d out of range", i, j, k, in.LinkIndex)
				}
			}
			p.nlinks += len(slot)
		}
		p.nslots += len(r.Inputs)
		for j, res := range r.Results {
			if res.LayerIndex < 0 || res.LayerIndex >= nlayers {
				return errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: result %d: layer index %d out of range", i, j, res.LayerIndex)
			}
		}
		for j, res := range r.ChainedResults {
			for k, l := range res.LayerIndexes {
				if l < 0 || l >= nlayers {
					return errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: chain %d: layer %d: layer index %d out of range", i, j, k, l)
				}
			}
		}
		p.nresults += len(r.Results) + len(r.ChainedResults)
	}
	return nil
}

// buildChains finds each layer's chain of descriptors, walking up parents
// without recursion, and reports loops among layers.
func (p *parser) buildChains() error {
	layers := p.cfg.Layers
	p.chains = make([][]ocispec.Descriptor, len(layers))
	state := make([]uint8, len(layers))
	// extended[i]: a child of layer i has taken the array slot after
	// chains[i], so other children must copy.
	extended := make([]bool, len(layers))
	var path []int
	for i := range layers {
		if state[i] != unvisited {
			continue
		}
		path = path[:0]
		j := i
		for j >= 0 && state[j] == unvisited {
			state[j] = onPath
			path = append(path, j)
			j = layers[j].ParentIndex
		}
		if j >= 0 && state[j] == onPath {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d: loop among parents at layer %d", i, j)
		}
		for k := len(path) - 1; k >= 0; k-- {
			l := path[k]
			state[l] = visited
			chain, err := p.extendChain(l, extended)
			if err != nil {
				return err
			}
			p.chains[l] = chain
		}
	}
	return nil
}

// extendChain returns the chain of layer l: its parent's with l's
// descriptor on top, sharing the parent's array when it can.
func (p *parser) extendChain(l int, extended []bool) ([]ocispec.Descriptor, error) {
	layer := &p.cfg.Layers[l]
	var base []ocispec.Descriptor
	if pi := layer.ParentIndex; pi >= 0 {
		base = p.chains[pi]
		if base == nil {
			return nil, nil
		}
	}
	d, ok, err := p.descriptor(layer.Blob)
	if err != nil {
		return nil, errors.Wrapf(err, "layer %d", l)
	}
	if !ok {
		return nil, nil
	}
	if pi := layer.ParentIndex; pi >= 0 && !extended[pi] && len(base) < cap(base) {
		extended[pi] = true
		return append(base, d), nil
	}
	chain := make([]ocispec.Descriptor, len(base)+1, 2*len(base)+2)
	copy(chain, base)
	chain[len(base)] = d
	return chain, nil
}

// descriptor returns the descriptor of blob from the provider.
func (p *parser) descriptor(blob digest.Digest) (ocispec.Descriptor, bool, error) {
	pair, ok := p.provider[blob]
	if !ok {
		return ocispec.Descriptor{}, false, nil
	}
	d := pair.Descriptor
	if d.Digest != blob {
		return ocispec.Descriptor{}, false, errors.Wrapf(errdefs.ErrInvalidArgument, "blob %s: provider gives a descriptor of digest %q", blob, d.Digest)
	}
	return d, true, nil
}

// addRecords adds every record after the records it links from, in the
// order of a depth-first walk from each record in turn (as BuildKit does),
// with an explicit stack.
func (p *parser) addRecords() error {
	recs := p.cfg.Records
	added := make([]Record, len(recs)) // nil for records t did not export
	state := make([]uint8, len(recs))
	b := builder{
		slots:   make([][]Link, p.nslots),
		links:   make([]Link, p.nlinks),
		results: make([]Result, p.nresults),
		remotes: make([]Remote, p.nresults),
	}

	type frame struct{ rec, slot, link int }
	var stack []frame
	for i := range recs {
		if state[i] != unvisited {
			continue
		}
		state[i] = onPath
		stack = append(stack[:0], frame{rec: i})
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			inputs := recs[f.rec].Inputs
			next := -1
			for next < 0 && f.slot < len(inputs) {
				if f.link == len(inputs[f.slot]) {
					f.slot++
					f.link = 0
					continue
				}
				src := inputs[f.slot][f.link].LinkIndex
				switch state[src] {
				case onPath:
					return errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: input %d link %d: loop through record %d", f.rec, f.slot, f.link, src)
				case unvisited:
					next = src
				}
				f.link++
			}
			if next >= 0 {
				state[next] = onPath
				stack = append(stack, frame{rec: next})
				continue
			}
			r, err := p.addRecord(f.rec, added, &b)
			if err != nil {
				return err
			}
			added[f.rec] = r
			state[f.rec] = visited
			stack = stack[:len(stack)-1]
		}
	}
	return nil
}

// builder hands out slices of bulk allocations, each capped at its length
// so that a Target that appends to one cannot reach into the next.
type builder struct {
	slots   [][]Link
	links   []Link
	results []Result
	remotes []Remote
}

// addRecord adds record idx, whose sources are all in added.
func (p *parser) addRecord(idx int, added []Record, b *builder) (Record, error) {
	rec := &p.cfg.Records[idx]

	var deps [][]Link
	if n := len(rec.Inputs); n > 0 {
		deps, b.slots = b.slots[:n:n], b.slots[n:]
		for j, slot := range rec.Inputs {
			links := b.links[:0:len(slot)]
			for _, in := range slot {
				if src := added[in.LinkIndex]; src != nil {
					links = append(links, Link{Src: src, Selector: in.Selector})
				}
			}
			b.links = b.links[len(slot):]
			if len(links) == 0 {
				// Every source of this slot was left out: so is this record.
				return nil, nil
			}
			deps[j] = links
		}
	}

	results := b.results[: 0 : len(rec.Results)+len(rec.ChainedResults)]
	b.results = b.results[cap(results):]
	for _, res := range rec.Results {
		chain := p.chains[res.LayerIndex]
		if chain == nil {
			continue
		}
		results = append(results, p.result(res.CreatedAt, chain[:len(chain):len(chain)], b))
	}
	for j, res := range rec.ChainedResults {
		chain := make([]ocispec.Descriptor, 0, len(res.LayerIndexes))
		for _, l := range res.LayerIndexes {
			d, ok, err := p.descriptor(p.cfg.Layers[l].Blob)
			if err != nil {
				return nil, errors.Wrapf(err, "record %d: chain %d", idx, j)
			}
			if !ok {
				chain = nil
				break
			}
			chain = append(chain, d)
		}
		if chain != nil {
			results = append(results, p.result(res.CreatedAt, chain, b))
		}
	}
	if len(results) == 0 {
		results = nil
	}

	r, ok, err := p.t.Add(rec.Digest, deps, results)
	if err != nil {
		return nil, errors.Wrapf(err, "record %d (%s)", idx, rec.Digest)
	}
	if !ok {
		return nil, nil
	}
	if r == nil {
		return nil, errors.Errorf("record %d (%s): target returned no record", idx, rec.Digest)
	}
	return r, nil
}

func (p *parser) result(createdAt time.Time, chain []ocispec.Descriptor, b *builder) Result {
	rm := &b.remotes[0]
	b.remotes = b.remotes[1:]
	rm.Descriptors = chain
	rm.Provider = p.provider
	return Result{CreatedAt: createdAt, Remote: rm}
}

// validateDigest is digest.Digest.Validate with a fast path for the
// common case, a sha256 digest in lower case hex (sha256 is linked in: see
// the import of crypto/sha256).
func validateDigest(d digest.Digest) error {
	s := string(d)
	if len(s) == len("sha256:")+64 && s[:7] == "sha256:" {
		ok := true
		for i := 7; i < len(s); i++ {
			c := s[i]
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return d.Validate()
}

// invalidf wraps err, the cause, as an errdefs.ErrInvalidArgument with a
// message that says where.
func invalidf(err error, format string, args ...any) error {
	return errors.WithMessagef(fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err), format, args...)
}
