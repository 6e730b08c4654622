package objstore

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
)

// readRetries is how many times a reader opens an object again, at the
// offset it got to, when its body breaks off: the SDKs retry requests, not
// the reading of a body they have handed over.
const readRetries = 3

// ReaderAt implements content.Provider. A descriptor of a cache config
// (media type remotecache.CacheConfigMediaTypeV0, or the digest of one
// Resolve read) is served from what Resolve read; any other from the blob,
// by ranged reads. The size is desc.Size, or the object's when desc.Size
// is 0. A missing blob is errdefs.ErrNotFound.
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
	r := &readerAt{ctx: ctx, s: s, key: s.BlobKey(desc.Digest), size: desc.Size}
	// The first read is opened now, so that a missing blob is found here
	// and the size, if not given, comes with it.
	if err := r.open(0); err != nil {
		return nil, errors.Wrapf(err, "blob %s", desc.Digest)
	}
	return r, nil
}

// configReaderAt serves a config that Resolve did not read: the object
// under the first name, if it has the descriptor's digest.
func (s *Store) configReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	got, err := s.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	if got.Digest != desc.Digest {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "cache config %s: %s is %s now", desc.Digest, s.b.Where(s.ConfigKey(s.cfg.Names[0])), got.Digest)
	}
	return s.ReaderAt(ctx, got)
}

type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

// readerAt reads an object through one body from an offset, read on for
// sequential reads and opened again, at an offset, for a read elsewhere or
// after a broken body.
type readerAt struct {
	ctx  context.Context
	s    *Store
	key  string
	size int64

	mu     sync.Mutex
	body   io.ReadCloser
	offset int64 // of the next byte of body
	closed bool
}

func (r *readerAt) Size() int64 { return r.size }

// open opens the body at off. An object that ends before off is shorter
// than the size the reader was opened for: errdefs.ErrDataLoss. (A body
// that keeps breaking off where the object goes on is a transfer that
// fails: errdefs.ErrUnavailable, after the retries.)
func (r *readerAt) open(off int64) error {
	body, err := r.s.b.Get(r.ctx, r.key, off)
	if err != nil {
		if off > 0 && errdefs.IsOutOfRange(err) {
			return errors.Wrapf(errdefs.ErrDataLoss, "%d bytes, fewer than the %d expected", off, r.size)
		}
		return err
	}
	if r.size == 0 && off == 0 && body.Size >= 0 {
		r.size = body.Size
	}
	r.body, r.offset = body.ReadCloser, off
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
	want := min(int64(len(p)), r.size-off)
	var n int
	for retries := 0; int64(n) < want; {
		if r.body == nil || r.offset != off+int64(n) {
			r.drop()
			if err := r.open(off + int64(n)); err != nil {
				return n, errors.Wrapf(err, "reading %s at %d", r.s.b.Where(r.key), off+int64(n))
			}
		}
		m, err := io.ReadFull(r.body, p[n:want])
		n += m
		r.offset += int64(m)
		if err == nil {
			break
		}
		r.drop()
		if r.ctx.Err() != nil {
			return n, r.ctx.Err()
		}
		if retries++; retries > readRetries {
			return n, errors.Wrapf(bodyError(err), "reading %s at %d", r.s.b.Where(r.key), r.offset)
		}
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
