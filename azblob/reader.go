package azblob

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
)

// readRetries is how many times a read opens a blob again, at the offset
// it got to, when its body breaks off (the SDK's retry reader, with
// If-Match on the blob's ETag): the SDK retries requests, not the reading
// of a body it has handed over.
const readRetries = 3

// ReaderAt implements content.Provider. A descriptor of a cache config
// (media type remotecache.CacheConfigMediaTypeV0, or the digest of one
// Resolve read) is served from what Resolve read; any other from the
// blob, by ranged downloads. The size is desc.Size, or the blob's when
// desc.Size is 0. A missing blob is errdefs.ErrNotFound.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "digest %q: %v", desc.Digest, err)
	}
	s.mu.Lock()
	dt, ok := s.resolved[desc.Digest]
	s.mu.Unlock()
	if ok {
		return bytesReaderAt{bytes.NewReader(dt)}, nil
	}
	if desc.MediaType == remotecache.CacheConfigMediaTypeV0 {
		return s.configReaderAt(ctx, desc)
	}
	name := s.BlobKey(desc.Digest)
	r := &readerAt{ctx: ctx, s: s, client: s.cc.NewBlobClient(name), name: name, size: desc.Size}
	// The first download is made now, so that a missing blob is found
	// here and the size, if not given, comes with it.
	if err := r.open(0); err != nil {
		return nil, errors.Wrapf(err, "blob %s", desc.Digest)
	}
	return r, nil
}

// configReaderAt serves a config that Resolve did not read: the blob under
// the first name, if it has the descriptor's digest.
func (s *Store) configReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	got, err := s.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	if got.Digest != desc.Digest {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "cache config %s: %s is %s now", desc.Digest, s.where(s.ConfigKey(s.opts.names[0])), got.Digest)
	}
	return s.ReaderAt(ctx, got)
}

type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

// readerAt reads a blob through one download from an offset, read on for
// sequential reads and made again, with a range, for a read elsewhere.
type readerAt struct {
	ctx    context.Context
	s      *Store
	client *blob.Client
	name   string
	size   int64

	mu     sync.Mutex
	body   io.ReadCloser
	offset int64 // of the next byte of body
	closed bool
}

func (r *readerAt) Size() int64 { return r.size }

func (r *readerAt) open(off int64) error {
	resp, err := r.client.DownloadStream(r.ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off}})
	if err != nil {
		return classify(err)
	}
	if r.size == 0 && off == 0 && resp.ContentLength != nil {
		r.size = *resp.ContentLength
	}
	r.body = resp.NewRetryReader(r.ctx, &blob.RetryReaderOptions{MaxRetries: readRetries})
	r.offset = off
	return nil
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errors.Wrap(errdefs.ErrFailedPrecondition, "read after close")
	}
	if off < 0 {
		return 0, errors.Wrapf(errdefs.ErrInvalidArgument, "negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	if r.body == nil || r.offset != off {
		r.drop()
		if err := r.open(off); err != nil {
			return 0, errors.Wrapf(err, "reading %s at %d", r.s.where(r.name), off)
		}
	}
	want := min(int64(len(p)), r.size-off)
	n, err := io.ReadFull(r.body, p[:want])
	r.offset += int64(n)
	if err != nil {
		r.drop()
		if r.ctx.Err() != nil {
			return n, r.ctx.Err()
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = errors.Wrapf(errdefs.ErrDataLoss, "%d bytes, fewer than the %d expected", off+int64(n), r.size)
		}
		return n, errors.Wrapf(classify(err), "reading %s at %d", r.s.where(r.name), off+int64(n))
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// drop closes the body, if any.
func (r *readerAt) drop() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

func (r *readerAt) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.drop()
	return nil
}

// Info implements content.InfoProvider with the blob's properties (a
// HEAD): its size, its creation time as CreatedAt, and as UpdatedAt the
// later of its Last-Modified time and the time of the last refresh
// (updated_at metadata). A missing blob (or container) is
// errdefs.ErrNotFound; any other failure keeps its own class. On a store
// not opened WithReadOnly, a blob older than the touch refresh age is
// first refreshed (see WithTouchRefresh), and UpdatedAt is the refresh's
// time.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if err := dgst.Validate(); err != nil {
		return content.Info{}, errors.Wrapf(errdefs.ErrInvalidArgument, "digest %q: %v", dgst, err)
	}
	name := s.BlobKey(dgst)
	p, err := s.cc.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return content.Info{}, errors.Wrapf(classify(err), "blob %s", dgst)
	}
	info := props(p)
	info.Digest = dgst
	if !s.opts.readOnly && time.Since(info.UpdatedAt) > s.opts.touchRefresh {
		t, err := s.touch(ctx, name, p)
		if err != nil {
			return content.Info{}, errors.Wrapf(err, "refreshing blob %s", dgst)
		}
		info.UpdatedAt = t
	}
	return info, nil
}
