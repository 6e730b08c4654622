package azblob

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/objstore"
)

// backend is the container as the shared store sees it
// (objstore.Backend), through the Azure SDK. Uploads are upload.go's,
// refreshes touch.go's.
type backend struct {
	cc        *container.Client
	container string
	opts      *options
}

var _ objstore.Backend = (*backend)(nil)

// Head reads the blob's properties: CreatedAt is its creation time (else
// its Last-Modified), UpdatedAt the later of Last-Modified and the
// updated_at metadata of the last refresh.
func (b *backend) Head(ctx context.Context, name string) (objstore.Object, error) {
	p, err := b.cc.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return objstore.Object{}, classify(err)
	}
	obj := objstore.Object{Key: name, UpdatedAt: updatedAt(p.LastModified, p.Metadata), Metadata: metadata(p.Metadata)}
	if p.ContentLength != nil {
		obj.Size = *p.ContentLength
	}
	if p.CreationTime != nil {
		obj.CreatedAt = *p.CreationTime
	} else if p.LastModified != nil {
		obj.CreatedAt = *p.LastModified
	}
	if p.ETag != nil {
		obj.ETag = string(*p.ETag)
	}
	if p.ContentType != nil {
		obj.ContentType = *p.ContentType
	}
	return obj, nil
}

// metadata is the SDK's metadata without its pointers.
func metadata(meta map[string]*string) map[string]string {
	m := make(map[string]string, len(meta))
	for k, v := range meta {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

// Get downloads the blob from off on.
func (b *backend) Get(ctx context.Context, name string, off int64) (objstore.Body, error) {
	resp, err := b.cc.NewBlobClient(name).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off}})
	if err != nil {
		return objstore.Body{}, classify(err)
	}
	return objstore.NewBody(resp.Body, resp.ContentLength), nil
}

// List lists the blobs whose names start with prefix, with their
// metadata: UpdatedAt is what Head would say.
func (b *backend) List(ctx context.Context, prefix string, fn func(objstore.Object) error) error {
	opts := &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	p := b.cc.NewListBlobsFlatPager(opts)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify(err)
		}
		if page.Segment == nil {
			continue
		}
		for _, item := range page.Segment.BlobItems {
			if item == nil || item.Name == nil {
				continue
			}
			obj := objstore.Object{Key: *item.Name}
			if p := item.Properties; p != nil {
				if p.ETag != nil {
					obj.ETag = string(*p.ETag)
				}
				if p.ContentLength != nil {
					obj.Size = *p.ContentLength
				}
				if p.CreationTime != nil {
					obj.CreatedAt = *p.CreationTime
				}
				obj.UpdatedAt = updatedAt(p.LastModified, item.Metadata)
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete deletes the blob and its snapshots, with If-Match for an etag
// (ConditionNotMet, errdefs.ErrFailedPrecondition, if the blob changed).
func (b *backend) Delete(ctx context.Context, name, etag string) error {
	include := blob.DeleteSnapshotsOptionTypeInclude
	opts := &blob.DeleteOptions{DeleteSnapshots: &include}
	if etag != "" {
		tag := azcore.ETag(etag)
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &tag}}
	}
	_, err := b.cc.NewBlobClient(name).Delete(ctx, opts)
	return classify(err)
}

// Where names a blob as CONTAINER/NAME.
func (b *backend) Where(name string) string { return b.container + "/" + name }

// withContainer runs op and, if it failed because the container does not
// exist and the store may create it, creates the container (another
// writer may have just done so) and runs op again.
func (b *backend) withContainer(ctx context.Context, op func() error) error {
	err := op()
	if err == nil || !*b.opts.createContainer || !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return err
	}
	if _, cerr := b.cc.Create(ctx, nil); cerr != nil && !bloberror.HasCode(cerr, bloberror.ContainerAlreadyExists) {
		return errors.Wrapf(classify(cerr), "creating container %s", b.container)
	}
	return op()
}
