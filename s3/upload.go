package s3

import (
	"context"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

// Put writes size bytes of body to key: with one PUT below the multipart
// threshold, else in parts, at most the part concurrency at once. Each
// part is a section of body, which the SDK can read again to sign and to
// retry. A failed multipart upload is aborted.
func (b *backend) Put(ctx context.Context, key string, body io.ReaderAt, size int64, mediaType string) error {
	var contentType *string
	if mediaType != "" {
		contentType = &mediaType
	}
	if size < b.opts.threshold {
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &b.bucket,
			Key:           &key,
			Body:          io.NewSectionReader(body, 0, size),
			ContentLength: &size,
			ContentType:   contentType,
		})
		return classify(err)
	}

	partSize := max(b.opts.partSize, (size+maxParts-1)/maxParts)
	n := (size + partSize - 1) / partSize
	return b.multipart(ctx, key, nil, contentType, n, &size, func(ctx context.Context, uploadID *string, num int32) (*string, error) {
		off := int64(num-1) * partSize
		length := min(partSize, size-off)
		out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        &b.bucket,
			Key:           &key,
			UploadId:      uploadID,
			PartNumber:    &num,
			Body:          io.NewSectionReader(body, off, length),
			ContentLength: &length,
		})
		if err != nil {
			return nil, errors.Wrapf(classify(err), "part %d", num)
		}
		return out.ETag, nil
	})
}

// multipart makes the object at key, with meta and contentType, as a
// multipart upload of n parts: part sends part num (from 1) of the upload
// and returns its ETag, at most the part concurrency at once. When every
// part is sent the upload is completed (with size, if not nil, for the
// server to check); if any fails, or ctx is done, it is aborted.
func (b *backend) multipart(ctx context.Context, key string, meta map[string]string, contentType *string, n int64, size *int64,
	part func(ctx context.Context, uploadID *string, num int32) (*string, error)) error {
	mpu, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      &b.bucket,
		Key:         &key,
		Metadata:    meta,
		ContentType: contentType,
	})
	if err != nil {
		return classify(err)
	}
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.opts.partConcurrency)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			num := int32(i + 1)
			etag, err := part(gctx, mpu.UploadId, num)
			if err != nil {
				return err
			}
			parts[i] = types.CompletedPart{PartNumber: &num, ETag: etag}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &b.bucket,
			Key:             &key,
			UploadId:        mpu.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			MpuObjectSize:   size,
		})
		err = classify(err)
	}
	if err != nil {
		b.abort(ctx, key, mpu.UploadId)
		return err
	}
	return nil
}

// abort gives up a multipart upload, even when ctx is done, so that no
// parts are left behind (they would be billed, and never expire without a
// lifecycle rule for them).
func (b *backend) abort(ctx context.Context, key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: &key, UploadId: uploadID})
}
