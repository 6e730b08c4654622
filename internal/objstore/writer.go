package objstore

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/errclass"
)

// spoolMemory is how much of a write is kept in memory before the rest
// goes to a file in the spool directory.
const spoolMemory = 4 << 20

// Writer implements content.Ingester. The bytes are kept (in memory, then
// in a file) until Commit has checked their size and digest; only then
// are they uploaded (Backend.Put), so a failed or cancelled write leaves
// no object. A descriptor of media type remotecache.CacheConfigMediaTypeV0
// is the cache config, written under every name; any other is a blob,
// written under its digest. An OCI or Docker manifest or index is refused
// with errdefs.ErrInvalidArgument: the store keeps the config-only form
// (remotecache.FormatConfigOnly). A read-only store refuses every write
// with errdefs.ErrFailedPrecondition.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, errclass.Ensure(err, errdefs.ErrInvalidArgument)
		}
	}
	if s.cfg.ReadOnly {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "%s: opened read-only, no writes", s)
	}
	switch wo.Desc.MediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2ManifestList:
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "writing %s of type %s: an %s cache has the config-only form (remotecache.FormatConfigOnly), no manifest", wo.Desc.Digest, wo.Desc.MediaType, s.cfg.Kind)
	}
	if wo.Desc.Digest != "" {
		if err := wo.Desc.Digest.Validate(); err != nil {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "digest %q: %v", wo.Desc.Digest, err)
		}
	}
	alg := digest.Canonical
	if wo.Desc.Digest != "" && wo.Desc.Digest.Algorithm().Available() {
		alg = wo.Desc.Digest.Algorithm()
	}
	now := time.Now()
	return &writer{
		s:        s,
		ref:      wo.Ref,
		desc:     wo.Desc,
		alg:      alg,
		digester: alg.Digester(),
		started:  now,
		updated:  now,
	}, nil
}

type writer struct {
	s    *Store
	ref  string
	desc ocispec.Descriptor

	alg digest.Algorithm

	mu       sync.Mutex
	digester digest.Digester
	mem      []byte
	file     *os.File
	fileName string // to remove, if it could not be unlinked at once
	size     int64
	started  time.Time
	updated  time.Time
	done     bool
	err      error // a failed spool write: the spool no longer matches
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errors.Wrap(errdefs.ErrFailedPrecondition, "write after commit or close")
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.file == nil && len(w.mem)+len(p) > spoolMemory {
		f, err := os.CreateTemp(w.s.cfg.SpoolDir, "remotecache-"+w.s.cfg.Kind+"-")
		if err != nil {
			w.err = local(errors.Wrap(err, "spooling write"))
			return 0, w.err
		}
		// Unlinked at once where the system allows: nothing is left
		// behind, whatever happens. Elsewhere release removes it.
		if os.Remove(f.Name()) != nil {
			w.fileName = f.Name()
		}
		w.file = f
		if _, err := f.Write(w.mem); err != nil {
			w.err = local(errors.Wrap(err, "spooling write"))
			return 0, w.err
		}
		w.mem = nil
	}
	if w.file != nil {
		if _, err := w.file.Write(p); err != nil {
			// The file may hold part of p: nothing can be committed.
			w.err = local(errors.Wrap(err, "spooling write"))
			return 0, w.err
		}
	} else {
		w.mem = append(w.mem, p...)
	}
	w.digester.Hash().Write(p)
	w.size += int64(len(p))
	w.updated = time.Now()
	return len(p), nil
}

// local classes an error of this machine (a spool file) that has no
// class as errdefs.ErrUnknown.
func local(err error) error { return errclass.Ensure(err, errdefs.ErrUnknown) }

// Digest returns the digest of the bytes written so far.
func (w *writer) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.digester.Digest()
}

func (w *writer) Status() (content.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return content.Status{
		Ref:       w.ref,
		Offset:    w.size,
		Total:     w.desc.Size,
		Expected:  w.desc.Digest,
		StartedAt: w.started,
		UpdatedAt: w.updated,
	}, nil
}

// Truncate supports only 0: starting over.
func (w *writer) Truncate(size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if size != 0 {
		return errors.Wrapf(errdefs.ErrNotImplemented, "truncate to %d: only 0 is supported", size)
	}
	w.release()
	w.digester = w.alg.Digester()
	w.err = nil
	return nil
}

// release drops what has been written.
func (w *writer) release() {
	if w.file != nil {
		w.file.Close()
		w.file = nil
	}
	if w.fileName != "" {
		os.Remove(w.fileName)
		w.fileName = ""
	}
	w.mem = nil
	w.size = 0
}

func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.release()
	return nil
}

// Commit checks size and digest, then uploads. Size 0 and an empty
// expected digest mean "what the descriptor says, or what was written".
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, _ ...content.Opt) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errors.Wrap(errdefs.ErrFailedPrecondition, "commit after commit or close")
	}
	w.done = true
	defer w.release()
	if w.err != nil {
		return w.err
	}
	if size == 0 {
		size = w.desc.Size
	}
	if size > 0 && size != w.size {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "unexpected commit size %d, expected %d", w.size, size)
	}
	if expected == "" {
		expected = w.desc.Digest
	}
	got := w.digester.Digest()
	if expected != "" && expected != got {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "unexpected commit digest %s, expected %s", got, expected)
	}
	if w.desc.MediaType == remotecache.CacheConfigMediaTypeV0 {
		return w.commitConfig(ctx, got)
	}
	key := w.s.BlobKey(got)
	if err := w.s.b.Put(ctx, key, w.body(), w.size, w.desc.MediaType); err != nil {
		return errors.Wrapf(err, "uploading blob %s to %s", got, w.s.b.Where(key))
	}
	return nil
}

// body reads what was written, as often as the backend needs for signing
// and retries.
func (w *writer) body() io.ReaderAt {
	if w.file != nil {
		return w.file
	}
	return bytes.NewReader(w.mem)
}

// commitConfig writes the cache config under every name, in turn, after
// checking that it is in the config-only form: a config without layer
// annotations would be refused by BuildKit's importer. The last writer
// wins, as with BuildKit's: the config moves the name.
func (w *writer) commitConfig(ctx context.Context, dgst digest.Digest) error {
	dt := w.mem
	if w.file != nil {
		dt = make([]byte, w.size)
		if _, err := w.file.ReadAt(dt, 0); err != nil {
			return local(errors.Wrapf(err, "reading spooled config %s", dgst))
		}
	}
	if err := checkConfigOnly(dt, w.s.cfg.Kind); err != nil {
		return errors.Wrapf(err, "cache config %s", dgst)
	}
	for _, name := range w.s.cfg.Names {
		key := w.s.ConfigKey(name)
		if err := w.s.b.Put(ctx, key, bytes.NewReader(dt), int64(len(dt)), remotecache.CacheConfigMediaTypeV0); err != nil {
			return errors.Wrapf(err, "writing cache config %s to %s", dgst, w.s.b.Where(key))
		}
	}
	return nil
}

// configLayers is the part of a cache config that the store reads.
type configLayers struct {
	Layers []struct {
		Blob        digest.Digest `json:"blob"`
		Annotations *struct {
			DiffID digest.Digest `json:"diffID"`
		} `json:"annotations"`
	} `json:"layers"`
}

// checkConfigOnly refuses a config that is not one, or whose layers lack
// the annotations (with a diffID) of the config-only form, naming the
// kind of store.
func checkConfigOnly(dt []byte, kind string) error {
	var cfg configLayers
	if err := json.Unmarshal(dt, &cfg); err != nil {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "not a cache config: %v", err)
	}
	for i, l := range cfg.Layers {
		if l.Annotations == nil || l.Annotations.DiffID == "" {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d (%s) has no annotations with a diffID: an %s cache has the config-only form (remotecache.FormatConfigOnly)", i, l.Blob, kind)
		}
	}
	return nil
}
