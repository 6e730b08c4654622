package cachegen

import (
	"context"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Provider serves a graph's blobs: a content.Provider and a
// content.InfoProvider. Blobs marked Missing are not found. It counts the
// calls it gets, so tests can check how often they are asked.
type Provider struct {
	g             *Graph
	infoCalls     atomic.Int64
	readerAtCalls atomic.Int64
}

var (
	_ content.Provider     = (*Provider)(nil)
	_ content.InfoProvider = (*Provider)(nil)
)

// Provider returns a new provider of g's blobs.
func (g *Graph) Provider() *Provider { return &Provider{g: g} }

func (p *Provider) blob(dgst digest.Digest) (Blob, error) {
	b, ok := p.g.Blobs[dgst]
	if !ok || b.Missing {
		return Blob{}, errors.Wrapf(errdefs.ErrNotFound, "cachegen: blob %s", dgst)
	}
	return b, nil
}

// Info implements content.InfoProvider.
func (p *Provider) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p.infoCalls.Add(1)
	b, err := p.blob(dgst)
	if err != nil {
		return content.Info{}, err
	}
	return content.Info{Digest: dgst, Size: b.Descriptor.Size}, nil
}

// ReaderAt implements content.Provider.
func (p *Provider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p.readerAtCalls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := p.blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	return blobReaderAt{b}, nil
}

// InfoCalls returns the number of Info calls so far.
func (p *Provider) InfoCalls() int64 { return p.infoCalls.Load() }

// ReaderAtCalls returns the number of ReaderAt calls so far.
func (p *Provider) ReaderAtCalls() int64 { return p.readerAtCalls.Load() }

type blobReaderAt struct{ Blob }

func (blobReaderAt) Close() error { return nil }
