package ocilayout

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/filters"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// tmpPrefix starts the name of every file a writer has not committed yet:
// blobs/<alg>/.tmp-<hex>-<random> (.tmp-<random> when Writer was given no
// digest). No digest starts with a dot, so Walk
// never takes one for a blob, and Prune finds what killed writers left.
const tmpPrefix = ".tmp-"

// Writer implements content.Ingester. A blob already in the layout gives
// errdefs.ErrAlreadyExists. The ref must not be empty, and only one
// writer of a Store may hold a ref at a time: another Writer with the
// same ref fails with errdefs.ErrUnavailable until the first is
// committed, closed or aborted (content.OpenWriter waits for that).
//
// The writer writes the blob straight to a temp file of its own beside
// the blob's final name, hashing it on the way; Commit checks the size
// and digest, syncs the file and renames it into place, so a blob is
// never seen torn and two writers of one blob, in one process or two,
// each write their own file and the second rename finds the blob there.
// A write is not resumed: Close without Commit removes the file.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (_ content.Writer, err error) {
	defer func() { err = classify(err) }()
	if s.readOnly {
		return nil, s.errReadOnly("write")
	}
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, errors.Wrap(optionError(err), "writer")
		}
	}
	if wo.Ref == "" {
		return nil, errors.Wrap(errdefs.ErrInvalidArgument, "writer: empty ref")
	}
	alg := digest.Canonical
	if d := wo.Desc.Digest; d != "" {
		if err := d.Validate(); err != nil {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "blob %q: %v", d, err)
		}
		if info, err := s.blobs.Info(ctx, d); err == nil && (wo.Desc.Size <= 0 || info.Size == wo.Desc.Size) {
			return nil, errors.Wrapf(errdefs.ErrAlreadyExists, "blob %s", d)
		}
		alg = d.Algorithm()
	}
	w := &blobWriter{
		s:        s,
		ref:      wo.Ref,
		dir:      filepath.Join(s.dir, blobsDir, alg.String()),
		digester: alg.Digester(),
		total:    wo.Desc.Size,
		expected: wo.Desc.Digest,
	}
	if err := s.hold(w); err != nil {
		return nil, err
	}
	if err := w.create(); err != nil {
		s.release(w)
		return nil, errors.Wrapf(err, "oci layout %s: writing %s", s.dir, wo.Ref)
	}
	return w, nil
}

// hold takes w's ref for w.
func (s *Store) hold(w *blobWriter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "oci layout %s: write %s: store closed", s.dir, w.ref)
	}
	if _, ok := s.writers[w.ref]; ok {
		return errors.Wrapf(errdefs.ErrUnavailable, "oci layout %s: ref %s locked", s.dir, w.ref)
	}
	if s.writers == nil {
		s.writers = map[string]*blobWriter{}
	}
	s.writers[w.ref] = w
	return nil
}

// release frees w's ref, if w still holds it.
func (s *Store) release(w *blobWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writers[w.ref] == w {
		delete(s.writers, w.ref)
	}
}

// writer returns the open writer holding ref.
func (s *Store) writer(ref string) (*blobWriter, error) {
	if s.readOnly {
		return nil, s.errReadOnly("write " + ref)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[ref]
	if !ok {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "oci layout %s: no write in progress for ref %s", s.dir, ref)
	}
	return w, nil
}

// Status implements content.IngestManager: the state of the write in
// progress through s for ref, which Writer was given.
func (s *Store) Status(ctx context.Context, ref string) (content.Status, error) {
	w, err := s.writer(ref)
	if err != nil {
		return content.Status{}, classify(err)
	}
	return w.Status()
}

// ListStatuses implements content.IngestManager: the writes in progress
// through s, filtered by ref as containerd's stores filter them
// (`ref==name`, `ref~=regexp`). Writes through other Stores, in this
// process or another, are not listed: they are temp files that only
// Prune, which waits until no other Store is open, removes.
func (s *Store) ListStatuses(ctx context.Context, fs ...string) ([]content.Status, error) {
	if s.readOnly {
		return nil, s.errReadOnly("list writes")
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, classify(errors.Wrapf(errdefs.ErrInvalidArgument, "listing writes: %v", err))
	}
	var sts []content.Status
	for _, w := range s.openWriters() {
		st, err := w.Status()
		if err != nil {
			continue // closed since listed
		}
		if filter.Match(filters.AdapterFunc(func(fp []string) (string, bool) {
			if len(fp) == 1 && fp[0] == "ref" {
				return st.Ref, true
			}
			return "", false
		})) {
			sts = append(sts, st)
		}
	}
	return sts, nil
}

// Abort implements content.IngestManager: the write in progress through s
// for ref is closed and its temp file removed. A ref with no write in
// progress (never opened, or closed, committed or aborted already) is
// errdefs.ErrNotFound.
func (s *Store) Abort(ctx context.Context, ref string) error {
	w, err := s.writer(ref)
	if err != nil {
		return classify(err)
	}
	return w.Close()
}

// openWriters returns the writers holding a ref. Take no writer's lock
// while holding s.mu: Close and Commit take s.mu (to free the ref) while
// they hold their own.
func (s *Store) openWriters() []*blobWriter {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := make([]*blobWriter, 0, len(s.writers))
	for _, w := range s.writers {
		ws = append(ws, w)
	}
	return ws
}

// tempFiles returns the temp files of the writes in progress through s.
func (s *Store) tempFiles() map[string]bool {
	ws := s.openWriters()
	files := make(map[string]bool, len(ws))
	for _, w := range ws {
		w.mu.Lock()
		if w.f != nil {
			files[w.f.Name()] = true
		}
		w.mu.Unlock()
	}
	return files
}

// blobWriter is a content.Writer into one temp file in blobs/<alg>/,
// keeping a running digest. It is safe for concurrent use, so that Abort
// can close it while another goroutine writes.
type blobWriter struct {
	s        *Store
	ref      string
	dir      string // blobs/<alg>, where the temp file is
	total    int64
	expected digest.Digest // from the descriptor given to Writer, if any

	mu        sync.Mutex
	f         *os.File // nil once committed or closed
	digester  digest.Digester
	offset    int64
	startedAt time.Time
	updatedAt time.Time
}

// create makes blobs/<alg> if need be and the temp file in it.
func (w *blobWriter) create() error {
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return err
	}
	pattern := tmpPrefix + "*"
	if w.expected != "" {
		pattern = tmpPrefix + w.expected.Encoded() + "-*"
	}
	f, err := os.CreateTemp(w.dir, pattern)
	if err != nil {
		return err
	}
	w.f = f
	w.startedAt = time.Now()
	w.updatedAt = w.startedAt
	return nil
}

// errClosed is the error of a call on a committed or closed writer.
func (w *blobWriter) errClosed(what string) error {
	return errors.Wrapf(errdefs.ErrFailedPrecondition, "oci layout %s: %s %s: writer closed", w.s.dir, what, w.ref)
}

// Write implements io.Writer, hashing what it writes.
func (w *blobWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, w.errClosed("write")
	}
	n, err := w.f.Write(p)
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	w.updatedAt = time.Now()
	if err != nil {
		return n, classify(errors.Wrapf(err, "oci layout %s: writing %s", w.s.dir, w.ref))
	}
	return n, nil
}

// Digest is the digest of what has been written so far: the exporter
// checks a blob through it rather than hash it twice.
func (w *blobWriter) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.digester.Digest()
}

// Status implements content.Writer.
func (w *blobWriter) Status() (content.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return content.Status{}, classify(w.errClosed("status of"))
	}
	return content.Status{
		Ref:       w.ref,
		Offset:    w.offset,
		Total:     w.total,
		Expected:  w.expected,
		StartedAt: w.startedAt,
		UpdatedAt: w.updatedAt,
	}, nil
}

// Truncate implements content.Writer for size 0, starting the write over;
// other sizes are not supported (errdefs.ErrNotImplemented).
func (w *blobWriter) Truncate(size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return classify(w.errClosed("truncate"))
	}
	if size != 0 {
		return errors.Wrapf(errdefs.ErrNotImplemented, "oci layout %s: truncate %s to %d: only 0 is supported", w.s.dir, w.ref, size)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return classify(errors.Wrapf(err, "oci layout %s: truncate %s", w.s.dir, w.ref))
	}
	if err := w.f.Truncate(0); err != nil {
		return classify(errors.Wrapf(err, "oci layout %s: truncate %s", w.s.dir, w.ref))
	}
	w.digester.Hash().Reset()
	w.offset = 0
	w.updatedAt = time.Now()
	return nil
}

// Close implements content.Writer: a writer not committed is given up,
// its temp file removed and its ref freed. Closing again does nothing.
func (w *blobWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	defer w.s.release(w)
	err := f.Close()
	if rerr := os.Remove(f.Name()); rerr != nil && err == nil {
		err = rerr
	}
	return classify(errors.Wrapf(err, "oci layout %s: closing write %s", w.s.dir, w.ref))
}

// Commit implements content.Writer: it checks the bytes written against
// size and expected (each where not zero) and against the descriptor
// given to Writer, syncs the file and renames it to blobs/<alg>/<hex>.
// Wrong bytes are errdefs.ErrFailedPrecondition, and leave nothing
// behind. A blob already there with that size is errdefs.ErrAlreadyExists:
// another writer got there first. Commit always closes the writer.
//
// The rename is durable across a power loss once blobs/<alg> is synced:
// Tag syncs the directory of every blob it names before it writes
// index.json, so a blob no tag names may lose its name in a crash, but no
// tag ever names a blob that a crash can lose. (One directory sync per
// blob would cost a fifth more than the blob writes themselves.)
func (w *blobWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) (err error) {
	defer func() { err = classify(err) }()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return w.errClosed("commit")
	}
	f := w.f
	w.f = nil
	defer w.s.release(w)
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var base content.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return errors.Wrapf(optionError(err), "oci layout %s: commit %s", w.s.dir, w.ref)
		}
	}
	dgst, err := w.check(f, size, expected)
	if err != nil {
		return errors.Wrapf(err, "oci layout %s: commit %s", w.s.dir, w.ref)
	}
	if runtime.GOOS != "windows" {
		// Blobs never change: read-only, as containerd's local store
		// makes them. (On Windows that would be the read-only
		// attribute, which stops Delete and a rename over the file.)
		if err := f.Chmod(0o444); err != nil {
			return errors.Wrapf(err, "oci layout %s: commit %s", w.s.dir, w.ref)
		}
	}
	if err := f.Sync(); err != nil {
		return errors.Wrapf(err, "oci layout %s: commit %s: sync", w.s.dir, w.ref)
	}
	if err := f.Close(); err != nil {
		return errors.Wrapf(err, "oci layout %s: commit %s", w.s.dir, w.ref)
	}
	target, _ := w.s.blobs.path(dgst) // dgst is one we computed
	if dir := filepath.Dir(target); dir != w.dir {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return errors.Wrapf(err, "oci layout %s: commit %s", w.s.dir, w.ref)
		}
	}
	there := func() bool {
		fi, err := os.Lstat(target)
		return err == nil && fi.Mode().IsRegular() && fi.Size() == w.offset
	}
	if there() {
		return errors.Wrapf(errdefs.ErrAlreadyExists, "oci layout %s: blob %s", w.s.dir, dgst)
	}
	// A rename over a blob another writer renamed in the meantime
	// replaces it with the same bytes, atomically; over a file of the
	// wrong size, it repairs it.
	if err := os.Rename(f.Name(), target); err != nil {
		if there() { // Windows: the blob appeared, open in another process
			return errors.Wrapf(errdefs.ErrAlreadyExists, "oci layout %s: blob %s", w.s.dir, dgst)
		}
		return errors.Wrapf(err, "oci layout %s: commit %s", w.s.dir, w.ref)
	}
	committed = true
	return nil
}

// check compares what was written with size and expected (where not
// zero) and with the descriptor given to Writer (where it had a digest
// and size), and returns the digest of the blob.
func (w *blobWriter) check(f *os.File, size int64, expected digest.Digest) (digest.Digest, error) {
	for _, want := range []int64{size, w.total} {
		if want > 0 && want != w.offset {
			return "", errors.Wrapf(errdefs.ErrFailedPrecondition, "%d bytes written, expected %d", w.offset, want)
		}
	}
	dgst := w.digester.Digest()
	for _, want := range []digest.Digest{expected, w.expected} {
		if want == "" {
			continue
		}
		if err := want.Validate(); err != nil {
			return "", errors.Wrapf(errdefs.ErrInvalidArgument, "expected digest %q: %v", want, err)
		}
		if want.Algorithm() != dgst.Algorithm() {
			// Written without a descriptor (so hashed with the
			// canonical algorithm), committed with another: hash the
			// file again, as containerd's local store does.
			d, err := rehash(f, want.Algorithm())
			if err != nil {
				return "", err
			}
			dgst = d
		}
		if want != dgst {
			return "", errors.Wrapf(errdefs.ErrFailedPrecondition, "bytes written have digest %s, expected %s", dgst, want)
		}
	}
	return dgst, nil
}

// rehash returns the digest of f's content with alg.
func rehash(f *os.File, alg digest.Algorithm) (digest.Digest, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	d := alg.Digester()
	if _, err := io.Copy(d.Hash(), f); err != nil {
		return "", errors.Wrapf(err, "hashing with %s", alg)
	}
	return d.Digest(), nil
}

// isTemp tells whether name (a file in blobs/<alg>/) is a writer's temp
// file.
func isTemp(name string) bool { return strings.HasPrefix(name, tmpPrefix) }
