package ocilayout

import (
	"context"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// readOnly is the content.Store of a Store opened WithReadOnly: blobs to
// read, every write and every question about writes refused. Unlike
// containerd's local store it makes nothing in the directory when made
// (local.NewStore probes for fs-verity with a file of its own).
type readOnly struct{ blobs }

var _ content.Store = readOnly{}

// errReadOnly is returned by writes to a Store opened WithReadOnly.
func errReadOnly(dir, what string) error {
	return errors.Wrapf(errdefs.ErrFailedPrecondition, "oci layout %s: %s: opened read-only", dir, what)
}

// Update implements content.Manager: refused.
func (r readOnly) Update(_ context.Context, info content.Info, _ ...string) (content.Info, error) {
	return content.Info{}, errReadOnly(r.dir, "update "+info.Digest.String())
}

// Delete implements content.Manager: refused.
func (r readOnly) Delete(_ context.Context, dgst digest.Digest) error {
	return errReadOnly(r.dir, "delete "+dgst.String())
}

// Writer implements content.Ingester: refused.
func (r readOnly) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	return nil, errReadOnly(r.dir, "write")
}

// Status implements content.IngestManager: refused, there are no writes.
func (r readOnly) Status(_ context.Context, ref string) (content.Status, error) {
	return content.Status{}, errReadOnly(r.dir, "status of write "+ref)
}

// ListStatuses implements content.IngestManager: refused, there are no
// writes.
func (r readOnly) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	return nil, errReadOnly(r.dir, "list writes")
}

// Abort implements content.IngestManager: refused.
func (r readOnly) Abort(_ context.Context, ref string) error {
	return errReadOnly(r.dir, "abort write "+ref)
}
