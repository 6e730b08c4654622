package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxKnownManifest bounds the manifest PrepareExport reads: a cache
// manifest of thousands of blobs is well under it.
const maxKnownManifest = 4 << 20

// distributionSource begins the key of the label and annotation that
// names the repositories of a registry a blob is in:
// containerd.io/distribution.source.<host> = REPO[,REPO…], as containerd
// labels the blobs it pulls and BuildKit annotates lazily pulled layers.
const distributionSource = "containerd.io/distribution.source."

// known is what a Remote knows the repository has, so that it need not
// ask: the blobs the manifest at the tag names (PrepareExport), those a
// HEAD found, and those it uploaded or mounted. A read that finds a blob
// gone forgets it; a refused manifest forgets everything, so that the
// exporter's checks that follow ask the registry.
type known struct {
	mu    sync.Mutex
	blobs map[digest.Digest]int64 // size
	// tag is the manifest the reference's tag pointed at when
	// PrepareExport resolved it ("" if none or not resolved).
	tag digest.Digest
}

func (k *known) size(d digest.Digest) (int64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n, ok := k.blobs[d]
	return n, ok
}

func (k *known) add(d digest.Digest, size int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.blobs == nil {
		k.blobs = map[digest.Digest]int64{}
	}
	k.blobs[d] = size
}

func (k *known) forget(d digest.Digest) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.blobs, d)
}

// forgetAll forgets every blob and the tag.
func (k *known) forgetAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.blobs, k.tag = nil, ""
}

func (k *known) tagged() digest.Digest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tag
}

// PrepareExport implements remotecache.ExportPreparer: it resolves the
// reference's tag once and reads the manifest there, whose blobs (its
// config and layers, or the blob entries of an index) are in the
// repository and so need no HEAD request; a manifest with that digest is
// not written again while the tag still points at it (Writer checks with
// one HEAD request). Three requests in all for an export of an unchanged
// cache. A tag not there yet, or a registry that fails the one attempt to
// resolve it or to read the manifest, teaches nothing and is no error: the blobs are checked one by one. Only a
// cancelled context is an error.
func (r *Remote) PrepareExport(ctx context.Context) error {
	// One attempt: what it would learn saves requests, it is worth no
	// retries.
	_, desc, err := r.resolver.Resolve(ctx, r.ref)
	if err != nil {
		r.known.mu.Lock()
		r.known.tag = ""
		r.known.mu.Unlock()
		return ctx.Err()
	}
	blobs := r.manifestBlobs(ctx, desc)
	r.known.mu.Lock()
	r.known.tag = desc.Digest
	r.known.mu.Unlock()
	for _, b := range blobs {
		r.known.add(b.Digest, b.Size)
	}
	return ctx.Err()
}

// manifestBlobs reads the manifest desc, which teaches r the blobs it
// names (see ReaderAt), and returns them, or nothing if it cannot be read.
func (r *Remote) manifestBlobs(ctx context.Context, desc ocispec.Descriptor) []ocispec.Descriptor {
	if desc.Size > maxKnownManifest {
		return nil
	}
	ra, err := r.ReaderAt(ctx, desc)
	if err != nil {
		return nil
	}
	defer ra.Close()
	dt, err := io.ReadAll(io.NewSectionReader(ra, 0, desc.Size))
	if err != nil || digest.FromBytes(dt) != desc.Digest {
		return nil
	}
	return blobsOf(dt)
}

// learnManifest reads all of the manifest ra opened, desc, and when its
// bytes are desc's, adds the blobs it names to r.listed (see KnownInfo).
// It returns the bytes as a reader, or ra itself (untouched) when desc is
// no manifest or too large to hold.
func (r *Remote) learnManifest(ra content.ReaderAt, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if !isManifest(desc.MediaType) || desc.Size > maxKnownManifest {
		return ra, nil
	}
	defer ra.Close()
	dt, err := io.ReadAll(io.NewSectionReader(ra, 0, desc.Size))
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(dt) == desc.Digest {
		for _, b := range blobsOf(dt) {
			r.listed.add(b.Digest, b.Size)
		}
	}
	return bytesReaderAt{bytes.NewReader(dt)}, nil
}

// bytesReaderAt is a content.ReaderAt on bytes in memory.
type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

// blobsOf returns the blobs a manifest or index names that are not
// manifests themselves: its config and layers, or an index's blob
// entries, each with a valid digest and size; nothing if dt is no JSON
// manifest.
func blobsOf(dt []byte) []ocispec.Descriptor {
	var m struct {
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(dt, &m); err != nil {
		return nil
	}
	var out []ocispec.Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	for _, d := range m.Manifests {
		if !isManifest(d.MediaType) {
			out = append(out, d)
		}
	}
	valid := out[:0]
	for _, d := range out {
		if d.Digest.Validate() == nil && d.Size >= 0 {
			valid = append(valid, d)
		}
	}
	return valid
}

// isManifest tells whether mediaType is that of a manifest or an index,
// which are pushed under the tag, not as blobs.
func isManifest(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2ManifestList:
		return true
	}
	return false
}

// sourceLabels are the labels of Info: the repository as the
// distribution source of its blobs, so that an export from it into
// another repository of the same registry mounts them.
func (r *Remote) sourceLabels() map[string]string {
	return map[string]string{distributionSource + reference.Domain(r.named): r.repo}
}

// knownInfo answers Info from what r knows the repository has.
func (r *Remote) knownInfo(dgst digest.Digest) (content.Info, bool) {
	size, ok := r.known.size(dgst)
	if !ok {
		return content.Info{}, false
	}
	return content.Info{Digest: dgst, Size: size, Labels: r.sourceLabels()}, true
}

// forgetIfGone forgets dgst when err says the repository does not have
// it.
func (r *Remote) forgetIfGone(dgst digest.Digest, err error) {
	if errdefs.IsNotFound(err) {
		r.known.forget(dgst)
		r.listed.forget(dgst)
	}
}

// KnownInfo implements remotecache.KnownInfoProvider: the Info of a blob
// the Remote knows the repository has without asking (Info's known
// blobs), or that a manifest read from the repository names. A copy from
// here checks those with no HEAD before the GET that reads them (issue
// 11.6); if one is gone after all, that GET says not found and the export
// drops the results that need it. Info itself still asks about a blob
// only a manifest named, so that inspect and repair see what the
// repository has now.
func (r *Remote) KnownInfo(dgst digest.Digest) (content.Info, bool) {
	if info, ok := r.knownInfo(dgst); ok {
		return info, true
	}
	size, ok := r.listed.size(dgst)
	if !ok {
		return content.Info{}, false
	}
	return content.Info{Digest: dgst, Size: size, Labels: r.sourceLabels()}, true
}

// MountsBlobs implements remotecache.BlobMounter: a blob whose descriptor
// names another repository of this registry as its source is mounted from
// there (see Writer).
func (r *Remote) MountsBlobs() bool { return true }
