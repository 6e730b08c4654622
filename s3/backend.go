package s3

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/buildcache/remotecache/internal/objstore"
)

// backend is the bucket as the shared store sees it (objstore.Backend),
// through the AWS SDK. Uploads are upload.go's, refreshes touch.go's.
type backend struct {
	client *s3.Client
	bucket string
	opts   *options
}

var _ objstore.Backend = (*backend)(nil)

// Head is a HEAD of the object: LastModified is CreatedAt, and UpdatedAt
// the later of it and the updated-at metadata of the last refresh.
func (b *backend) Head(ctx context.Context, key string) (objstore.Object, error) {
	head, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return objstore.Object{}, classify(err)
	}
	obj := objstore.Object{
		Key:         key,
		Size:        aws.ToInt64(head.ContentLength),
		UpdatedAt:   updatedAt(head.LastModified, head.Metadata),
		ETag:        aws.ToString(head.ETag),
		ContentType: aws.ToString(head.ContentType),
		Metadata:    head.Metadata,
	}
	if head.LastModified != nil {
		obj.CreatedAt = *head.LastModified
	}
	return obj, nil
}

// Get is a GET of the object, with a range from off on.
func (b *backend) Get(ctx context.Context, key string, off int64) (objstore.Body, error) {
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: &key}
	if off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return objstore.Body{}, classify(err)
	}
	return objstore.NewBody(out.Body, out.ContentLength), nil
}

// List lists the objects under prefix with ListObjectsV2, which gives no
// metadata: UpdatedAt is LastModified (Prune asks Head again before it
// deletes).
func (b *backend) List(ctx context.Context, prefix string, fn func(objstore.Object) error) error {
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify(err)
		}
		for _, obj := range page.Contents {
			o := objstore.Object{Key: aws.ToString(obj.Key), Size: aws.ToInt64(obj.Size), ETag: aws.ToString(obj.ETag)}
			if obj.LastModified != nil {
				o.CreatedAt, o.UpdatedAt = *obj.LastModified, *obj.LastModified
			}
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete is a DeleteObject, with If-Match for an etag. The store does not
// ask for one (not every S3-compatible server honours it): Prune asks Head
// again instead.
func (b *backend) Delete(ctx context.Context, key, etag string) error {
	in := &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &key}
	if etag != "" {
		in.IfMatch = &etag
	}
	_, err := b.client.DeleteObject(ctx, in)
	return classify(err)
}

// Where names an object as s3://BUCKET/KEY.
func (b *backend) Where(key string) string { return "s3://" + b.bucket + "/" + key }
