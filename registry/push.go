package registry

import (
	"bytes"
	"context"
	"io"
	"os"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// spoolMemory is the size up to which an upload keeps its bytes in memory;
// larger ones go to a file in the spool directory.
const spoolMemory = 1 << 20

// maxResets bounds how often one upload request may be restarted by
// containerd (on an authentication challenge or a retried status) while
// its bytes are being written.
const maxResets = 8

// Writer implements content.Ingester: it pushes the blob that
// content.WithDescriptor names (required: digest, size and, for manifests,
// media type). Manifests (a manifest or index media type) are pushed under
// the reference's tag, or by digest for a digest reference; anything else
// is pushed as a blob. The ref option is only reported in Status.
//
// The upload starts at once, with containerd's pusher: if the registry
// already has the blob, or the tag already points at the manifest, Writer
// returns an error of class errdefs.ErrAlreadyExists and nothing is sent.
// The bytes written go to the registry as they come, and are kept too (in
// memory up to 1 MiB, else in a file of the spool directory), so that if
// the upload fails in a way a retry may mend (see the package docs),
// Commit uploads them again as a whole new attempt, after a backoff, up to
// the number of attempts the options allow. An upload cannot be retried at
// the HTTP level: its body is streamed once. A failure no retry can mend
// (a 4xx status, a cancelled context) shows at the next Write.
//
// Writer itself never fails with an error of class errdefs.ErrUnavailable:
// content.OpenWriter, which the Exporter opens its writers with, takes
// that class for a ref another writer holds and calls Writer again until
// its context is done. A registry that is unavailable for longer than
// this package waits (a 503 whose Retry-After is over a minute, a
// RetryLaterError) fails the first Write, and Commit, instead, with the
// same error.
//
// Commit checks the size and digest of what was written before the
// upload is let to complete; the registry checks the digest again. The
// writer's resources are released by Commit and by Close, whichever comes
// first.
func (r *Remote) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, err
		}
	}
	desc := wo.Desc
	if err := desc.Digest.Validate(); err != nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "push to %s: descriptor digest %q: %v", r.ref, desc.Digest, err)
	}
	if desc.Size < 0 {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "push to %s: %s: negative size %d", r.ref, desc.Digest, desc.Size)
	}
	now := time.Now()
	w := &writer{
		r:        r,
		desc:     desc,
		spool:    &spool{dir: r.opts.spoolDir},
		digester: desc.Digest.Algorithm().Digester(),
		status:   content.Status{Ref: wo.Ref, Total: desc.Size, Expected: desc.Digest, StartedAt: now, UpdatedAt: now},
		attempts: 1,
	}
	live, err := r.push(ctx, w)
	switch {
	case err == nil:
		w.live = live
	case errdefs.IsAlreadyExists(err):
		return nil, errors.Wrapf(err, "push to %s", r.ref)
	case uploadRetryable(err):
		w.err = err // Commit tries again with the spooled bytes
	case errdefs.IsUnavailable(err):
		w.failed = r.wrap(ctx, hintIndexRefused(err, desc.MediaType), "pushing %s to %s", desc.Digest, r.ref)
	default:
		return nil, r.wrap(ctx, hintIndexRefused(err, desc.MediaType), "pushing %s to %s", desc.Digest, r.ref)
	}
	return w, nil
}

// push opens an upload of w.desc. It is called for each attempt.
func (r *Remote) push(ctx context.Context, w *writer) (content.Writer, error) {
	p, err := r.newResolver().Pusher(ctx, r.ref)
	if err != nil {
		return nil, err
	}
	cw, err := p.Push(ctx, w.desc)
	return cw, classify(err)
}

// writer is the content.Writer of Remote.Writer.
type writer struct {
	r        *Remote
	desc     ocispec.Descriptor
	spool    *spool
	digester digest.Digester
	status   content.Status
	closed   bool

	live     content.Writer // the upload that streams as bytes come, if alive
	err      error          // why the last upload attempt failed
	attempts int            // upload attempts made
	failed   error          // a failure of the first attempt that no retry mends
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.Wrapf(errdefs.ErrFailedPrecondition, "push of %s: write after close", w.desc.Digest)
	}
	if w.failed != nil {
		return 0, w.failed
	}
	if w.status.Offset+int64(len(p)) > w.desc.Size {
		return 0, errors.Wrapf(errdefs.ErrFailedPrecondition, "push of %s: %d bytes written, over the size %d", w.desc.Digest, w.status.Offset+int64(len(p)), w.desc.Size)
	}
	start := w.status.Offset
	if _, err := w.spool.Write(p); err != nil {
		return 0, errors.Wrapf(err, "push of %s: keeping bytes", w.desc.Digest)
	}
	w.digester.Hash().Write(p)
	w.status.Offset += int64(len(p))
	w.status.UpdatedAt = time.Now()
	if w.live != nil {
		if err := w.feed(p, start); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// feed writes p, which starts at offset start, to the live upload. When
// containerd restarted the upload's request (content.ErrReset), all bytes
// before p are sent again first. A failure a new upload may mend drops the
// live upload, for Commit to start another; any other failure is returned.
func (w *writer) feed(p []byte, start int64) error {
	_, err := w.live.Write(p)
	for resets := 0; errors.Is(err, content.ErrReset) && resets < maxResets; resets++ {
		if err = w.replay(start); err == nil {
			_, err = w.live.Write(p)
		}
	}
	if err == nil {
		return nil
	}
	w.dropLive(err)
	if uploadRetryable(err) {
		return nil
	}
	return errors.Wrapf(hintIndexRefused(w.err, w.desc.MediaType), "pushing %s to %s", w.desc.Digest, w.r.ref)
}

// replay sends the first n spooled bytes to the live upload.
func (w *writer) replay(n int64) error {
	_, err := io.Copy(w.live, io.NewSectionReader(w.spool, 0, n))
	return err
}

func (w *writer) dropLive(err error) {
	if w.live != nil {
		w.live.Close()
		w.live = nil
	}
	w.err = classify(err)
}

// Commit completes the upload, retrying it as a whole if it failed (see
// Remote.Writer). An upload the registry already has is a success.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, _ ...content.Opt) error {
	if w.closed {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "push of %s: commit after close", w.desc.Digest)
	}
	defer w.Close()
	if w.failed != nil {
		return w.failed
	}
	if w.status.Offset != w.desc.Size || (size > 0 && size != w.desc.Size) {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "push of %s: %d bytes written, want %d", w.desc.Digest, w.status.Offset, w.desc.Size)
	}
	if got := w.digester.Digest(); got != w.desc.Digest || (expected != "" && expected != w.desc.Digest) {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "push of %s: bytes written have digest %s", w.desc.Digest, got)
	}
	var err error
	switch {
	case w.live != nil:
		err = w.live.Commit(ctx, w.desc.Size, w.desc.Digest)
		if errors.Is(err, content.ErrReset) {
			// The request was restarted after all bytes were sent.
			err = content.Copy(ctx, w.live, w.spool.reader(), w.desc.Size, w.desc.Digest)
		}
		w.live.Close()
		w.live = nil
		err = classify(err)
	case w.err != nil:
		err = w.err
	default: // Truncate dropped the live upload
		w.attempts++
		err = w.attempt(ctx)
	}
	for err != nil && !errdefs.IsAlreadyExists(err) && uploadRetryable(err) && w.attempts < w.r.opts.attempts {
		if err := sleep(ctx, w.r.backoff(w.attempts)); err != nil {
			return err
		}
		w.attempts++
		err = w.attempt(ctx)
	}
	if err == nil || errdefs.IsAlreadyExists(err) {
		return nil
	}
	return w.r.wrap(ctx, attempts(hintIndexRefused(err, w.desc.MediaType), w.attempts), "pushing %s to %s", w.desc.Digest, w.r.ref)
}

// attempt uploads the spooled bytes as a new upload.
func (w *writer) attempt(ctx context.Context) error {
	cw, err := w.r.push(ctx, w)
	if err != nil {
		return err
	}
	defer cw.Close()
	return classify(content.Copy(ctx, cw, w.spool.reader(), w.desc.Size, w.desc.Digest))
}

func (w *writer) Status() (content.Status, error) { return w.status, nil }

func (w *writer) Digest() digest.Digest { return w.digester.Digest() }

// Truncate supports only size 0: writing starts over, with a new upload at
// Commit.
func (w *writer) Truncate(size int64) error {
	if size != 0 {
		return errors.Wrapf(errdefs.ErrNotImplemented, "push of %s: truncate to %d: only 0 is supported", w.desc.Digest, size)
	}
	if w.status.Offset == 0 {
		return nil
	}
	if w.live != nil {
		w.live.Close()
		w.live = nil
	}
	w.err = nil
	w.digester = w.desc.Digest.Algorithm().Digester()
	w.status.Offset = 0
	return w.spool.Truncate()
}

// Close abandons an upload that was not committed and releases the
// writer's resources.
func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.live != nil {
		w.live.Close()
		w.live = nil
	}
	return w.spool.Close()
}

// spool keeps the bytes of an upload: in memory up to spoolMemory, in a
// file of dir beyond.
type spool struct {
	dir  string
	mem  []byte
	f    *os.File
	size int64
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && s.size+int64(len(p)) <= spoolMemory {
		s.mem = append(s.mem, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "remotecache-upload-*")
		if err != nil {
			return 0, err
		}
		s.f = f
		if _, err := f.Write(s.mem); err != nil {
			return 0, err
		}
		s.mem = nil
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	return n, err
}

func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	return bytes.NewReader(s.mem).ReadAt(p, off)
}

// reader returns a reader of all the bytes kept.
func (s *spool) reader() *io.SectionReader { return io.NewSectionReader(s, 0, s.size) }

func (s *spool) Truncate() error {
	s.mem, s.size = s.mem[:0], 0
	if s.f != nil {
		if err := s.f.Truncate(0); err != nil {
			return err
		}
		_, err := s.f.Seek(0, io.SeekStart)
		return err
	}
	return nil
}

func (s *spool) Close() error {
	s.mem = nil
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	err := f.Close()
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
}
