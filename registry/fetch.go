package registry

import (
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Info implements content.InfoProvider with a HEAD request for the blob:
// its size if the repository has it, an error of class errdefs.ErrNotFound
// if not. A blob the Remote knows the repository has (named by the
// manifest PrepareExport read, found by an earlier Info, uploaded or
// mounted) is answered without a request; a read that finds it gone
// makes it unknown again. Only the blobs endpoint is asked, never the manifests one:
// writing a manifest is what moves the tag, so a manifest must never look
// like a blob already there (containerd's FetchByDigest and Resolve fall
// back to the manifests endpoint, hence the request of our own, sent with
// containerd's client and authorizer). Registries keep no labels: Info
// has one, containerd.io/distribution.source.<host> = the repository, so
// that an export from here into another repository of the same registry
// mounts the blob instead of uploading it.
func (r *Remote) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if err := dgst.Validate(); err != nil {
		return content.Info{}, errors.Wrapf(errdefs.ErrInvalidArgument, "blob %q: %v", dgst, err)
	}
	if info, ok := r.knownInfo(dgst); ok {
		return info, nil
	}
	var info content.Info
	err := r.retry(ctx, func(ctx context.Context) error {
		resp, err := r.do(ctx, http.MethodHead, r.blobURL(dgst.String()), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return errors.Wrapf(errdefs.ErrNotFound, "blob %s", dgst)
		case resp.StatusCode != http.StatusOK:
			return responseError(resp)
		}
		info = content.Info{Digest: dgst, Size: resp.ContentLength, Labels: r.sourceLabels()}
		return nil
	})
	if err == nil && info.Size >= 0 {
		r.known.add(dgst, info.Size)
	}
	r.forgetIfGone(dgst, err)
	if err != nil {
		return content.Info{}, r.wrap(ctx, err, "checking blob %s in %s", dgst, r.ref)
	}
	return info, nil
}

// ReaderAt implements content.Provider: it reads the blob or manifest desc
// (a manifest type reads from the manifests endpoint) with containerd's
// fetcher. The first request is sent before ReaderAt returns, so a missing
// blob is an error of class errdefs.ErrNotFound here. Later reads use ctx
// too: the reader belongs to the call that opened it. A read that breaks
// off (connection reset, 5xx, …) is resumed where it stopped, with a
// range request, after a backoff; the retry options bound the attempts
// that make no progress. A manifest (up to 4 MiB) is read whole at once,
// and teaches the Remote the blobs it names (KnownInfo).
func (r *Remote) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "blob %q: %v", desc.Digest, err)
	}
	if desc.Size < 0 {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "blob %s: negative size %d", desc.Digest, desc.Size)
	}
	f, err := r.resolver.Fetcher(ctx, r.ref)
	if err != nil {
		return nil, r.wrap(ctx, err, "reading %s from %s", desc.Digest, r.ref)
	}
	ra := &readerAt{r: r, ctx: ctx, f: f, desc: desc}
	if err := r.retry(ctx, func(ctx context.Context) error { return ra.open(0) }); err != nil {
		r.forgetIfGone(desc.Digest, err)
		return nil, r.wrap(ctx, err, "reading %s from %s", desc.Digest, r.ref)
	}
	m, err := r.learnManifest(ra, desc)
	if err != nil {
		return nil, r.wrap(ctx, err, "reading manifest %s from %s", desc.Digest, r.ref)
	}
	return m, nil
}

// readerAt reads a blob through containerd's fetcher, whose reader turns
// seeks into range requests.
type readerAt struct {
	r    *Remote
	ctx  context.Context // of the ReaderAt call; ReadAt takes none
	f    remotes.Fetcher
	desc ocispec.Descriptor

	mu  sync.Mutex
	rc  io.ReadCloser // nil when no request is open
	pos int64         // offset of rc
}

// open starts a request for the blob from off on.
func (ra *readerAt) open(off int64) error {
	ra.closeBody()
	rc, err := ra.f.Fetch(ra.ctx, ra.desc)
	if err != nil {
		return classify(err)
	}
	if off > 0 {
		s, ok := rc.(io.Seeker)
		if !ok {
			rc.Close()
			return errors.Wrap(errdefs.ErrNotImplemented, "fetcher cannot seek")
		}
		if _, err := s.Seek(off, io.SeekStart); err != nil {
			rc.Close()
			return err
		}
	}
	// The fetcher's reader sends its request on the first read; a read of
	// nothing sends it now, so that errors show here.
	if _, err := rc.Read(nil); err != nil {
		rc.Close()
		return classify(err)
	}
	ra.rc, ra.pos = rc, off
	return nil
}

func (ra *readerAt) closeBody() {
	if ra.rc != nil {
		ra.rc.Close()
		ra.rc = nil
	}
}

func (ra *readerAt) Size() int64 { return ra.desc.Size }

func (ra *readerAt) ReadAt(p []byte, off int64) (int, error) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if off < 0 {
		return 0, errors.Wrapf(errdefs.ErrInvalidArgument, "reading %s at negative offset %d", ra.desc.Digest, off)
	}
	if off >= ra.desc.Size {
		return 0, io.EOF
	}
	want := p
	if rest := ra.desc.Size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	n := 0
	for failed := 0; n < len(want); {
		var err error
		switch {
		case ra.rc == nil:
			err = ra.open(off + int64(n))
		case ra.pos != off+int64(n):
			if s, ok := ra.rc.(io.Seeker); ok {
				_, err = s.Seek(off+int64(n), io.SeekStart)
				ra.pos = off + int64(n)
			} else {
				err = ra.open(off + int64(n))
			}
		}
		if err == nil {
			var m int
			m, err = io.ReadFull(ra.rc, want[n:])
			n += m
			ra.pos += int64(m)
			if m > 0 {
				failed = 0
			}
			if err == nil {
				break
			}
		}
		ra.closeBody()
		err = classify(err)
		if failed++; !retryable(err) || failed >= ra.r.opts.attempts {
			return n, ra.r.wrap(ra.ctx, attempts(err, failed), "reading %s from %s at offset %d", ra.desc.Digest, ra.r.ref, off+int64(n))
		}
		if err := sleep(ra.ctx, ra.r.backoff(failed)); err != nil {
			return n, err
		}
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (ra *readerAt) Close() error {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.closeBody()
	return nil
}
