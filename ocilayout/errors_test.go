package ocilayout_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/errclass"
	"github.com/buildcache/remotecache/ocilayout"
)

// Every failure of the public API carries an errdefs class, the file
// system's errors included, and keeps what it wraps.
func TestErrorsHaveClasses(t *testing.T) {
	ctx := context.Background()
	// layout makes a layout with one tag, latest, and returns it and the
	// tag's descriptor.
	layout := func(t *testing.T) (string, ocispec.Descriptor) {
		dir := t.TempDir()
		desc, err := exportAndTag(ctx, dir, 1, 0, "latest")
		if err != nil {
			t.Fatal(err)
		}
		return dir, desc
	}
	// file makes a regular file, for where a directory is expected: the
	// tests run as root, whom no permission bit stops.
	file := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(p, []byte("not a directory"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// replaceWithDir replaces dir/name with a directory.
	replaceWithDir := func(t *testing.T, dir, name string) {
		p := filepath.Join(dir, name)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(t *testing.T, dir, name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// damaged makes a layout with layout, opens it, then damages it: the
	// Store finds the damage when it next reads.
	damaged := func(t *testing.T, damage func(dir string)) (*ocilayout.Store, ocispec.Descriptor) {
		dir, desc := layout(t)
		s := openT(t, dir)
		damage(dir)
		return s, desc
	}
	readOnly := func(t *testing.T) (*ocilayout.Store, ocispec.Descriptor) {
		dir, desc := layout(t)
		s, err := ocilayout.Open(dir, ocilayout.WithReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, desc
	}
	expired := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	open := func(dir string, opts ...ocilayout.Option) error {
		s, err := ocilayout.Open(dir, opts...)
		if err == nil {
			s.Close()
		}
		return err
	}

	for _, tc := range []struct {
		name string
		// want is the class the error must have; nil: any.
		want error
		// unlessRoot: the case needs permission bits to stop a write,
		// which they do not for root.
		unlessRoot bool
		run        func(t *testing.T) error
	}{
		{name: "Open: under a file", run: func(t *testing.T) error {
			return open(filepath.Join(file(t), "cache"))
		}},
		{name: "Open: a file", run: func(t *testing.T) error { return open(file(t)) }},
		{name: "Open: not a layout", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			dir := t.TempDir()
			write(t, dir, "oci-layout", "not JSON")
			return open(dir)
		}},
		{name: "Open: oci-layout a directory", run: func(t *testing.T) error {
			dir := t.TempDir()
			replaceWithDir(t, dir, "oci-layout")
			return open(dir)
		}},
		{name: "Open: index.json.lock a directory", run: func(t *testing.T) error {
			dir := t.TempDir()
			write(t, dir, "oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
			replaceWithDir(t, dir, "index.json.lock")
			return open(dir)
		}},
		{name: "Open: .remotecache.lock a directory", run: func(t *testing.T) error {
			dir, _ := layout(t)
			replaceWithDir(t, dir, ".remotecache.lock")
			return open(dir)
		}},
		{name: "Open: a directory that cannot be written", want: errdefs.ErrPermissionDenied, unlessRoot: true, run: func(t *testing.T) error {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o755) })
			return open(filepath.Join(dir, "cache"))
		}},
		{name: "Open read-only: no layout", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			return open(t.TempDir(), ocilayout.WithReadOnly())
		}},
		{name: "Open read-only: a file", run: func(t *testing.T) error {
			return open(file(t), ocilayout.WithReadOnly())
		}},
		{name: "OpenContext: while a Prune runs", want: context.DeadlineExceeded, run: func(t *testing.T) error {
			dir, _ := layout(t)
			holdPrune(t, openT(t, dir))
			s, err := ocilayout.OpenContext(expired(), dir)
			if err == nil {
				s.Close()
			}
			return err
		}},
		{name: "Tag: read-only", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			s, desc := readOnly(t)
			return s.Tag(ctx, "other", desc)
		}},
		{name: "Tag: a digest that is none", want: errdefs.ErrInvalidArgument, run: func(t *testing.T) error {
			return openT(t, t.TempDir()).Tag(ctx, "x", ocispec.Descriptor{Digest: "sha256:nope"})
		}},
		{name: "Tag: a missing manifest", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("x"), Size: 1}
			return openT(t, t.TempDir()).Tag(ctx, "x", missing)
		}},
		{name: "Tag: a size that differs", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			dir, desc := layout(t)
			desc.Size++
			return openT(t, dir).Tag(ctx, "other", desc)
		}},
		{name: "Tag: a manifest that is not JSON", run: func(t *testing.T) error {
			s := openT(t, t.TempDir())
			desc := writeUntagged(t, s, "not a manifest")
			desc.MediaType = ocispec.MediaTypeImageManifest
			return s.Tag(ctx, "x", desc)
		}},
		{name: "Tag: index.json a directory", run: func(t *testing.T) error {
			s, desc := damaged(t, func(dir string) { replaceWithDir(t, dir, "index.json") })
			return s.Tag(ctx, "other", desc)
		}},
		{name: "Tag: index.json.lock a directory", run: func(t *testing.T) error {
			s, desc := damaged(t, func(dir string) { replaceWithDir(t, dir, "index.json.lock") })
			return s.Tag(ctx, "other", desc)
		}},
		{name: "Resolve: no such tag", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).Resolve(ctx, "nope")
			return err
		}},
		{name: "Resolve: no index.json", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			s, _ := damaged(t, func(dir string) { os.Remove(filepath.Join(dir, "index.json")) })
			_, err := s.Resolve(ctx, "latest")
			return err
		}},
		{name: "Resolve: index.json not JSON", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			s, _ := damaged(t, func(dir string) { write(t, dir, "index.json", "not JSON") })
			_, err := s.Resolve(ctx, "latest")
			return err
		}},
		{name: "Resolve: index.json a directory", run: func(t *testing.T) error {
			s, _ := damaged(t, func(dir string) { replaceWithDir(t, dir, "index.json") })
			_, err := s.Resolve(ctx, "latest")
			return err
		}},
		{name: "Tags: index.json a directory", run: func(t *testing.T) error {
			s, _ := damaged(t, func(dir string) { replaceWithDir(t, dir, "index.json") })
			_, err := s.Tags(ctx)
			return err
		}},
		{name: "Untag: read-only", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			s, _ := readOnly(t)
			return s.Untag(ctx, "latest")
		}},
		{name: "Untag: no such tag", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			return openT(t, t.TempDir()).Untag(ctx, "nope")
		}},
		{name: "Untag: index.json.lock a directory", run: func(t *testing.T) error {
			s, _ := damaged(t, func(dir string) { replaceWithDir(t, dir, "index.json.lock") })
			return s.Untag(ctx, "latest")
		}},
		{name: "Prune: read-only", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			s, _ := readOnly(t)
			_, err := s.Prune(ctx)
			return err
		}},
		{name: "Prune: an option that fails", want: errdefs.ErrInvalidArgument, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).Prune(ctx, ocilayout.FailingPruneOption(errors.New("no such option")))
			return err
		}},
		{name: "Prune: another Store open", want: context.DeadlineExceeded, run: func(t *testing.T) error {
			dir := t.TempDir()
			s := openT(t, dir)
			openT(t, dir)
			_, err := s.Prune(expired())
			return err
		}},
		{name: "Prune: another Prune", want: errdefs.ErrUnavailable, run: func(t *testing.T) error {
			// Two Stores prune at once: one is refused, and once its
			// Store is closed the other runs (TestConcurrentPrunes).
			first, _ := pruneAtOnce(t, ctx, t.TempDir())
			return first
		}},
		{name: "Prune: the prune lock a directory", run: func(t *testing.T) error {
			dir := t.TempDir()
			s := openT(t, dir)
			replaceWithDir(t, dir, ".remotecache.prune.lock")
			_, err := s.Prune(ctx)
			return err
		}},
		{name: "Prune: index.json not JSON", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			s, _ := damaged(t, func(dir string) { write(t, dir, "index.json", "not JSON") })
			_, err := s.Prune(ctx)
			return err
		}},
		{name: "Prune: a tag to a manifest that is not JSON", run: func(t *testing.T) error {
			dir := t.TempDir()
			s := openT(t, dir)
			desc := writeUntagged(t, s, "not a manifest")
			desc.MediaType = ocispec.MediaTypeImageManifest
			desc.Annotations = map[string]string{ocispec.AnnotationRefName: "bad"}
			idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}})
			write(t, dir, "index.json", string(idx))
			_, err := s.Prune(ctx)
			return err
		}},
		{name: "Writer: read-only", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			s, _ := readOnly(t)
			_, err := s.Writer(ctx, content.WithRef("x"))
			return err
		}},
		{name: "Writer: a digest that is none", want: errdefs.ErrInvalidArgument, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).Writer(ctx, content.WithRef("x"), content.WithDescriptor(ocispec.Descriptor{Digest: "sha256:nope"}))
			return err
		}},
		{name: "Writer: a blob already there", want: errdefs.ErrAlreadyExists, run: func(t *testing.T) error {
			dir, desc := layout(t)
			_, err := openT(t, dir).Writer(ctx, content.WithRef("x"), content.WithDescriptor(desc))
			return err
		}},
		{name: "Writer: blobs a file", run: func(t *testing.T) error {
			dir := t.TempDir()
			s := openT(t, dir)
			os.RemoveAll(filepath.Join(dir, "blobs"))
			write(t, dir, "blobs", "not a directory")
			_, err := s.Writer(ctx, content.WithRef("x"))
			return err
		}},
		{name: "Writer: no ref", want: errdefs.ErrInvalidArgument, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).Writer(ctx)
			return err
		}},
		{name: "Writer: a ref in use", want: errdefs.ErrUnavailable, run: func(t *testing.T) error {
			s := openT(t, t.TempDir())
			w := openWriter(t, s, "x")
			defer w.Close()
			_, err := s.Writer(ctx, content.WithRef("x"))
			return err
		}},
		{name: "Writer: Commit after Close", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			w := openWriter(t, openT(t, t.TempDir()), "x")
			w.Close()
			return w.Commit(ctx, 0, "")
		}},
		{name: "Writer: Commit of fewer bytes", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			w := writeString(t, openT(t, t.TempDir()), "x", "these")
			defer w.Close()
			return w.Commit(ctx, 6, "")
		}},
		{name: "Writer: Truncate to other than 0", want: errdefs.ErrNotImplemented, run: func(t *testing.T) error {
			w := openWriter(t, openT(t, t.TempDir()), "x")
			defer w.Close()
			return w.Truncate(1)
		}},
		{name: "Status: no such write", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).Status(ctx, "x")
			return err
		}},
		{name: "Abort: no such write", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			return openT(t, t.TempDir()).Abort(ctx, "x")
		}},
		{name: "ListStatuses: a filter that is none", want: errdefs.ErrInvalidArgument, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).ListStatuses(ctx, "ref==")
			return err
		}},
		{name: "Delete: a missing blob", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			return openT(t, t.TempDir()).Delete(ctx, digest.FromString("x"))
		}},
		{name: "Delete: a digest that is none", want: errdefs.ErrInvalidArgument, run: func(t *testing.T) error {
			return openT(t, t.TempDir()).Delete(ctx, "sha256:../../index.json")
		}},
		{name: "Update: no labels", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).Update(ctx, content.Info{Digest: digest.FromString("x")})
			return err
		}},
		{name: "Writer: Write after Close", run: func(t *testing.T) error {
			w := openWriter(t, openT(t, t.TempDir()), "x")
			w.Close()
			_, err := w.Write([]byte("late"))
			return err
		}},
		{name: "Writer: Commit of other bytes", want: errdefs.ErrFailedPrecondition, run: func(t *testing.T) error {
			w := writeString(t, openT(t, t.TempDir()), "x", "these")
			defer w.Close()
			return w.Commit(ctx, 5, digest.FromString("other"))
		}},
		{name: "Walk: an error of the walk function", run: func(t *testing.T) error {
			dir, _ := layout(t)
			return openT(t, dir).Walk(ctx, func(content.Info) error { return errors.New("stop") })
		}},
		{name: "ReaderAt: a missing blob", want: errdefs.ErrNotFound, run: func(t *testing.T) error {
			_, err := openT(t, t.TempDir()).ReaderAt(ctx, ocispec.Descriptor{Digest: digest.FromString("x")})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.unlessRoot && (os.Geteuid() == 0 || runtime.GOOS == "windows") {
				t.Skip("permission bits do not stop root (and are not Windows's)")
			}
			err := tc.run(t)
			switch {
			case err == nil:
				t.Fatal("no error")
			case !errclass.Has(err):
				t.Fatalf("%v: no errdefs class", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("%v: want class %v", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}
