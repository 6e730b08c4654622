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
	"golang.org/x/sync/errgroup"
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

// touch copies the object onto itself with new metadata (the user
// metadata and content type it had, and updated-at), which gives it a new
// last modification time: lifecycle rules that expire objects by age keep
// it. Objects over the max copy size are copied in parts, as CopyObject
// cannot copy them. It returns the object's new modification time.
func (s *Store) touch(ctx context.Context, key string, head *s3.HeadObjectOutput) (time.Time, error) {
	now := time.Now().UTC()
	meta := maps.Clone(head.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[touchMetadata] = now.Format(time.RFC3339Nano)
	source := copySource(s.bucket, key)
	size := aws.ToInt64(head.ContentLength)
	if size <= s.opts.maxCopySize {
		out, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:            &s.bucket,
			Key:               &key,
			CopySource:        &source,
			Metadata:          meta,
			MetadataDirective: types.MetadataDirectiveReplace,
			ContentType:       head.ContentType,
		})
		if err != nil {
			return time.Time{}, classify(err)
		}
		if out.CopyObjectResult != nil && out.CopyObjectResult.LastModified != nil {
			return *out.CopyObjectResult.LastModified, nil
		}
		return now, nil
	}

	mpu, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      &s.bucket,
		Key:         &key,
		Metadata:    meta,
		ContentType: head.ContentType,
	})
	if err != nil {
		return time.Time{}, classify(err)
	}
	n := (size + s.opts.maxCopySize - 1) / s.opts.maxCopySize
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.partConcurrency)
	for i := range n {
		g.Go(func() error {
			start := i * s.opts.maxCopySize
			end := min(start+s.opts.maxCopySize, size) - 1
			num := int32(i + 1)
			out, err := s.client.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:          &s.bucket,
				Key:             &key,
				CopySource:      &source,
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", start, end)),
				PartNumber:      &num,
				UploadId:        mpu.UploadId,
			})
			if err != nil {
				return errors.Wrapf(classify(err), "copying part %d", num)
			}
			parts[i] = types.CompletedPart{PartNumber: &num}
			if out.CopyPartResult != nil {
				parts[i].ETag = out.CopyPartResult.ETag
			}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &s.bucket,
			Key:             &key,
			UploadId:        mpu.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		err = classify(err)
	}
	if err != nil {
		s.abort(ctx, key, mpu.UploadId)
		return time.Time{}, err
	}
	return now, nil
}

// abort gives up a multipart upload, even when ctx is done, so that no
// parts are left behind (they would be billed, and never expire without a
// lifecycle rule for them).
func (s *Store) abort(ctx context.Context, key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID})
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
