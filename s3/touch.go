package s3

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/objstore"
)

// touchMetadata is the user metadata a refresh sets, as BuildKit's does.
const touchMetadata = "updated-at"

// bkTimeLayout is how BuildKit writes updated-at (time.Time.String, less
// the monotonic clock reading).
const bkTimeLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// updatedAt is when an object was last written or refreshed: its last
// modification, or its updated-at metadata if later. Not every server gives
// an object copied onto itself a new modification time (Versity's posix
// backend changes only the metadata), and a refresh must not then be made
// again at every export, nor Prune take the object for old.
func updatedAt(lastModified *time.Time, meta map[string]string) time.Time {
	var t time.Time
	if lastModified != nil {
		t = *lastModified
	}
	v, ok := meta[touchMetadata]
	if !ok {
		return t
	}
	if i := strings.Index(v, " m="); i >= 0 {
		v = v[:i]
	}
	for _, layout := range []string{time.RFC3339Nano, bkTimeLayout} {
		if m, err := time.Parse(layout, v); err == nil {
			if m.After(t) {
				return m
			}
			break
		}
	}
	return t
}

// Touch copies the object onto itself with new metadata (the user
// metadata and content type it had, and updated-at), which gives it a new
// last modification time: lifecycle rules that expire objects by age keep
// it. Objects over the max copy size are copied in parts, as CopyObject
// cannot copy them. It returns the object's new modification time.
func (b *backend) Touch(ctx context.Context, obj objstore.Object) (time.Time, error) {
	key := obj.Key
	var contentType *string
	if obj.ContentType != "" {
		contentType = &obj.ContentType
	}
	now := time.Now().UTC()
	meta := maps.Clone(obj.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[touchMetadata] = now.Format(time.RFC3339Nano)
	source := copySource(b.bucket, key)
	size := obj.Size
	if size <= b.opts.maxCopySize {
		out, err := b.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:            &b.bucket,
			Key:               &key,
			CopySource:        &source,
			Metadata:          meta,
			MetadataDirective: types.MetadataDirectiveReplace,
			ContentType:       contentType,
		})
		if err != nil {
			return time.Time{}, classify(err)
		}
		if out.CopyObjectResult != nil && out.CopyObjectResult.LastModified != nil {
			return *out.CopyObjectResult.LastModified, nil
		}
		return now, nil
	}

	n := (size + b.opts.maxCopySize - 1) / b.opts.maxCopySize
	err := b.multipart(ctx, key, meta, contentType, n, nil, func(ctx context.Context, uploadID *string, num int32) (*string, error) {
		start := int64(num-1) * b.opts.maxCopySize
		end := min(start+b.opts.maxCopySize, size) - 1
		out, err := b.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket:          &b.bucket,
			Key:             &key,
			CopySource:      &source,
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", start, end)),
			PartNumber:      &num,
			UploadId:        uploadID,
		})
		if err != nil {
			return nil, errors.Wrapf(classify(err), "copying part %d", num)
		}
		var etag *string
		if out.CopyPartResult != nil {
			etag = out.CopyPartResult.ETag
		}
		return etag, nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return now, nil
}

// copySource is the x-amz-copy-source of an object: bucket and key,
// URL-encoded as the API asks.
func copySource(bucket, key string) string {
	segs := strings.Split(bucket+"/"+key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}
