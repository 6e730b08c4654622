package remotecache

import (
	"context"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// DescriptorProvider maps the blobs of a cache config to their descriptors
// and to where they can be read. It is itself a content.Provider and a
// content.InfoProvider for those blobs.
type DescriptorProvider map[digest.Digest]DescriptorProviderPair

// DescriptorProviderPair is a blob's descriptor and a provider that has it.
type DescriptorProviderPair struct {
	Descriptor ocispec.Descriptor
	Provider   content.Provider
}

// ReaderAt implements content.Provider.
func (p DescriptorProviderPair) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if p.Provider == nil {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "blob %s: no provider", desc.Digest)
	}
	return p.Provider.ReaderAt(ctx, desc)
}

// Info implements content.InfoProvider: it asks the provider when that can
// answer, else it answers from the descriptor.
func (p DescriptorProviderPair) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if ip, ok := p.Provider.(content.InfoProvider); ok {
		return ip.Info(ctx, dgst)
	}
	if dgst != p.Descriptor.Digest {
		return content.Info{}, errors.Wrapf(errdefs.ErrNotFound, "blob %s", dgst)
	}
	return content.Info{Digest: dgst, Size: p.Descriptor.Size}, nil
}

// KnownInfo implements KnownInfoProvider when the provider does.
func (p DescriptorProviderPair) KnownInfo(dgst digest.Digest) (content.Info, bool) {
	if kp, ok := p.Provider.(KnownInfoProvider); ok {
		return kp.KnownInfo(dgst)
	}
	return content.Info{}, false
}

// ReaderAt implements content.Provider for the blobs in p.
func (p DescriptorProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	pair, ok := p[desc.Digest]
	if !ok {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "blob %s", desc.Digest)
	}
	return pair.ReaderAt(ctx, desc)
}

// Info implements content.InfoProvider for the blobs in p.
func (p DescriptorProvider) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	pair, ok := p[dgst]
	if !ok {
		return content.Info{}, errors.Wrapf(errdefs.ErrNotFound, "blob %s", dgst)
	}
	return pair.Info(ctx, dgst)
}

// KnownInfo implements KnownInfoProvider for the blobs in p whose provider
// does.
func (p DescriptorProvider) KnownInfo(dgst digest.Digest) (content.Info, bool) {
	pair, ok := p[dgst]
	if !ok {
		return content.Info{}, false
	}
	return pair.KnownInfo(dgst)
}
