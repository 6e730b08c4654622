package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
)

// readRetries is how many times a reader opens a blob again, at the offset
// it got to, when its body breaks off: the SDK retries requests, not the
// reading of a body it has handed over.
const readRetries = 3

// ReaderAt implements content.Provider. A descriptor of a cache config
// (media type remotecache.CacheConfigMediaTypeV0, or the digest of one
// Resolve read) is served from what Resolve read; any other from the blob
// object, by ranged GETs. The size is desc.Size, or the object's when
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
	key := s.BlobKey(desc.Digest)
	r := &readerAt{ctx: ctx, s: s, key: key, size: desc.Size}
	// The first GET is made now, so that a missing blob is found here and
	// the size, if not given, comes with it.
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
		return nil, errors.Wrapf(errdefs.ErrNotFound, "cache config %s: s3://%s/%s is %s now", desc.Digest, s.bucket, s.ConfigKey(s.opts.names[0]), got.Digest)
	}
	return s.ReaderAt(ctx, got)
}

type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

// readerAt reads an object through one GET from an offset, read on for
// sequential reads and made again, with a range, for a read elsewhere or
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

func (r *readerAt) open(off int64) error {
	in := &s3.GetObjectInput{Bucket: &r.s.bucket, Key: &r.key}
	if off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := r.s.client.GetObject(r.ctx, in)
	if err != nil {
		return classify(err)
	}
	if r.size == 0 && off == 0 && out.ContentLength != nil {
		r.size = *out.ContentLength
	}
	r.body, r.offset = out.Body, off
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
				return n, errors.Wrapf(err, "reading s3://%s/%s at %d", r.s.bucket, r.key, off+int64(n))
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
			return n, errors.Wrapf(classify(err), "reading s3://%s/%s at %d", r.s.bucket, r.key, r.offset)
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

// Info implements content.InfoProvider with a HEAD of the blob's object:
// its size, its last modification as CreatedAt, and as UpdatedAt the later
// of that and the time of the last refresh (updated-at metadata). A
// missing blob is errdefs.ErrNotFound; any other failure keeps its own
// class. On a store not opened WithReadOnly, a blob older than the touch
// refresh age is first copied onto itself (see WithTouchRefresh), as
// BuildKit's exporter does, and UpdatedAt is the copy's time.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if err := dgst.Validate(); err != nil {
		return content.Info{}, errors.Wrapf(errdefs.ErrInvalidArgument, "digest %q: %v", dgst, err)
	}
	key := s.BlobKey(dgst)
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return content.Info{}, errors.Wrapf(classify(err), "blob %s", dgst)
	}
	info := content.Info{Digest: dgst, Size: aws.ToInt64(head.ContentLength), UpdatedAt: updatedAt(head.LastModified, head.Metadata)}
	if head.LastModified != nil {
		info.CreatedAt = *head.LastModified
	}
	if !s.opts.readOnly && time.Since(info.UpdatedAt) > s.opts.touchRefresh {
		t, err := s.touch(ctx, key, head)
		if err != nil {
			return content.Info{}, errors.Wrapf(err, "refreshing blob %s", dgst)
		}
		info.UpdatedAt = t
	}
	return info, nil
}
