package ocilayout

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/filters"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// blobs reads the blobs of the layout at dir straight from
// blobs/<alg>/<hex>. It only stats, opens and lists: nothing in the
// directory is made or changed. It implements content.Provider and
// content.InfoProvider, and Walk; it is the read side of every Store.
type blobs struct{ dir string }

// path validates dgst, then names its file. A digest is validated before
// it is joined into a path: "sha256:../../x" reaches nothing.
func (b blobs) path(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", errors.Wrapf(errdefs.ErrInvalidArgument, "blob %q: %v", dgst, err)
	}
	return filepath.Join(b.dir, blobsDir, dgst.Algorithm().String(), dgst.Encoded()), nil
}

// check maps a stat or open error of blob dgst to its class (only a
// missing file is a missing blob), and refuses what is not a file.
func (b blobs) check(dgst digest.Digest, fi os.FileInfo, err error) error {
	switch {
	case os.IsNotExist(err):
		return errors.Wrapf(errdefs.ErrNotFound, "oci layout %s: blob %s", b.dir, dgst)
	case err != nil:
		return errors.Wrapf(err, "oci layout %s: blob %s", b.dir, dgst)
	case !fi.Mode().IsRegular():
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "oci layout %s: blob %s: not a regular file (%s)", b.dir, dgst, fi.Mode().Type())
	}
	return nil
}

// info is what Info and Walk say of a blob's file.
func info(dgst digest.Digest, fi os.FileInfo) content.Info {
	return content.Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime(), UpdatedAt: fi.ModTime()}
}

// Info implements content.InfoProvider.
func (b blobs) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p, err := b.path(dgst)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err := b.check(dgst, fi, err); err != nil {
		return content.Info{}, err
	}
	return info(dgst, fi), nil
}

// ReaderAt implements content.Provider. The size is the file's, as it was
// when opened.
func (b blobs) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p, err := b.path(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, b.check(desc.Digest, nil, err)
	}
	fi, err := f.Stat()
	if err := b.check(desc.Digest, fi, err); err != nil {
		f.Close()
		return nil, err
	}
	return &blobReader{File: f, size: fi.Size()}, nil
}

// Walk calls fn for every blob (filtered as containerd's content.Store
// Walk filters) of every algorithm this program knows. A layout without
// blobs/ has none. Files whose names are no digest (the temp files of
// writes in progress, another tool's) are skipped.
func (b blobs) Walk(ctx context.Context, fn content.WalkFunc, fs ...string) error {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "walking blobs: %v", err)
	}
	root := filepath.Join(b.dir, blobsDir)
	algs, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return errors.Wrapf(err, "oci layout %s: listing blobs", b.dir)
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, a.Name()))
		if err != nil {
			return errors.Wrapf(err, "oci layout %s: listing blobs", b.dir)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return errors.Wrapf(err, "oci layout %s: listing blobs", b.dir)
			}
			dgst := digest.NewDigestFromEncoded(alg, e.Name())
			if dgst.Validate() != nil || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if os.IsNotExist(err) {
				continue // removed since listed
			} else if err != nil {
				return errors.Wrapf(err, "oci layout %s: blob %s", b.dir, dgst)
			}
			if in := info(dgst, fi); filter.Match(content.AdaptInfo(in)) {
				if err := fn(in); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// blobReader is an open blob: content.ReaderAt over its file.
type blobReader struct {
	*os.File
	size int64
}

// Size implements content.ReaderAt.
func (r *blobReader) Size() int64 { return r.size }

// Reader reads the blob from its start; content.ReadBlob and
// content.NewReader use it rather than calls to ReadAt.
func (r *blobReader) Reader() io.Reader { return io.NewSectionReader(r.File, 0, r.size) }
