package registry

import (
	"bytes"
	"context"
	"io"
	"os"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// spoolMemory is the size up to which an upload keeps its bytes in memory;
// larger ones go to a file in the spool directory.
const spoolMemory = 1 << 20

// Writer implements content.Ingester: it pushes the blob that
// content.WithDescriptor names (required: digest, size and, for manifests,
// media type). Manifests (a manifest or index media type) are pushed under
// the reference's tag, or by digest for a digest reference; anything else
// is pushed as a blob. The ref option is only reported in Status.
//
// Writer sends no existence check: the Exporter asks Info first (which
// answers from what the Remote knows, see PrepareExport), so one check at
// most is made per blob. A blob whose descriptor has a
// containerd.io/distribution.source.<host> annotation naming another
// repository of this registry (Info gives one, and BuildKit writes them)
// is mounted from there: if the registry mounts it, Writer returns an
// error of class errdefs.ErrAlreadyExists that says so
// (remotecache.SkipDetailer: "mounted from HOST/REPO") and nothing is
// sent; if it refuses, the blob is uploaded into the session the refusal
// opened. A manifest that PrepareExport found under the tag is not pushed
// again while the tag still points at it (one HEAD request): Writer
// returns errdefs.ErrAlreadyExists.
//
// A blob up to 1 MiB is uploaded at Commit, in one request where the
// registry completes an upload in the POST that carries it (?digest=),
// else a POST and a PUT. A larger blob's upload starts at once: its bytes
// stream to the registry as they come. Either way the bytes are kept too
// (in memory up to 1 MiB, else in a file of the spool directory), so that
// if the upload fails in a way a retry may mend (see the package docs),
// Commit uploads them again as a whole new attempt, after a backoff, up to
// the number of attempts the options allow. A failure no retry can mend
// (a 4xx status, a cancelled context) shows at the next Write or at
// Commit.
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
		manifest: isManifest(desc.MediaType),
		spool:    &spool{dir: r.opts.spoolDir},
		digester: desc.Digest.Algorithm().Digester(),
		status:   content.Status{Ref: wo.Ref, Total: desc.Size, Expected: desc.Digest, StartedAt: now, UpdatedAt: now},
		attempts: 1,
	}
	var err error
	if w.manifest {
		err = r.manifestThere(ctx, desc)
	} else {
		err = w.start(ctx)
	}
	switch {
	case err == nil:
	case errdefs.IsAlreadyExists(err):
		return nil, errors.Wrapf(err, "push to %s", r.ref)
	case uploadRetryable(err):
		w.err = err // Commit tries again with the spooled bytes
	case errdefs.IsUnavailable(err):
		w.failed = w.wrap(ctx, err)
	default:
		return nil, w.wrap(ctx, err)
	}
	return w, nil
}

// manifestThere answers errdefs.ErrAlreadyExists when the manifest desc
// is the one PrepareExport found under the tag and the tag still points
// at it. A check that fails is no answer: the manifest is pushed.
func (r *Remote) manifestThere(ctx context.Context, desc ocispec.Descriptor) error {
	if r.known.tagged() != desc.Digest {
		return nil
	}
	if _, tagged := r.named.(reference.Tagged); !tagged {
		return errors.Wrapf(errdefs.ErrAlreadyExists, "manifest %s", desc.Digest)
	}
	if d, err := r.manifestDigest(ctx); err == nil && d == desc.Digest {
		return errors.Wrapf(errdefs.ErrAlreadyExists, "manifest %s under %s", desc.Digest, r.ref)
	}
	return nil
}

// writer is the content.Writer of Remote.Writer.
type writer struct {
	r        *Remote
	desc     ocispec.Descriptor
	manifest bool
	spool    *spool
	digester digest.Digester
	status   content.Status
	closed   bool

	session  string      // an upload session opened and not yet used
	live     *liveUpload // the upload that streams as bytes come, if alive
	err      error       // why the last upload attempt failed
	attempts int         // upload attempts made
	failed   error       // a failure of the first attempt that no retry mends
}

// start starts the upload of a blob: a mount, if the descriptor names a
// source repository, and for a large blob the POST and the PUT that
// streams the bytes as they come.
func (w *writer) start(ctx context.Context) error {
	from := w.r.mountSource(w.desc)
	if from == "" && w.desc.Size <= singleRequestMax {
		return nil // all at Commit
	}
	s, err := w.r.startUpload(ctx, w.desc, from, nil)
	if err != nil {
		return err
	}
	if s.done {
		w.r.known.add(w.desc.Digest, w.desc.Size)
		return &mountedError{from: reference.Domain(w.r.named) + "/" + from}
	}
	if w.desc.Size <= singleRequestMax {
		w.session = s.location
		return nil
	}
	w.live = w.r.startLive(ctx, s.location, w.desc)
	return nil
}

// wrap says what failed, with the hints that may mend it.
func (w *writer) wrap(ctx context.Context, err error) error {
	err = hintPushRefused(hintIndexRefused(classify(err), w.desc.MediaType), w.r.repo)
	return w.r.wrap(ctx, err, "pushing %s to %s", w.desc.Digest, w.r.ref)
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
	if _, err := w.spool.Write(p); err != nil {
		return 0, errors.Wrapf(err, "push of %s: keeping bytes", w.desc.Digest)
	}
	w.digester.Hash().Write(p)
	w.status.Offset += int64(len(p))
	w.status.UpdatedAt = time.Now()
	if w.live != nil {
		if err := w.live.write(p); err != nil {
			w.dropLive(err)
			if !uploadRetryable(w.err) {
				return len(p), w.wrap(context.Background(), w.err)
			}
		}
	}
	return len(p), nil
}

func (w *writer) dropLive(err error) {
	if w.live != nil {
		w.live.abort()
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
		err = classify(w.live.commit())
		w.live = nil
	case w.err != nil:
		err = w.err
	default:
		err = w.attempt(ctx)
	}
	for err != nil && !errdefs.IsAlreadyExists(err) && uploadRetryable(err) && w.attempts < w.r.opts.attempts {
		if err := sleep(ctx, w.r.backoff(w.attempts)); err != nil {
			return err
		}
		w.attempts++
		err = w.attempt(ctx)
	}
	switch {
	case err == nil || errdefs.IsAlreadyExists(err):
		if w.manifest {
			w.r.known.mu.Lock()
			w.r.known.tag = w.desc.Digest
			w.r.known.mu.Unlock()
		} else {
			w.r.known.add(w.desc.Digest, w.desc.Size)
		}
		return nil
	case w.manifest:
		// The registry may have refused it for a blob it no longer has,
		// though the Remote knew it had: what follows (the Exporter checks
		// every blob again) must ask the registry.
		w.r.known.forgetAll()
	}
	return w.wrap(ctx, attempts(err, w.attempts))
}

// attempt uploads the spooled bytes: a manifest with a PUT, a blob into
// the session a refused mount opened or as a whole new upload.
func (w *writer) attempt(ctx context.Context) error {
	body := func() (io.ReadCloser, error) { return io.NopCloser(w.spool.reader()), nil }
	if w.manifest {
		return classify(w.r.putManifest(ctx, w.desc, body))
	}
	if s := w.session; s != "" {
		w.session = "" // a session that failed is not used again
		return classify(w.r.finishUpload(ctx, s, w.desc, body, false))
	}
	return classify(w.r.uploadWhole(ctx, w.desc, body))
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
		w.live.abort()
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
		w.live.abort()
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
