package azblob

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

// Put writes size bytes of body to the block blob name, with its
// content type: with one Put Blob up to the block size, else staged in
// blocks (at most the block concurrency at once), each a section of body
// the SDK can read again to retry, then committed with Put Block List, so
// that the blob appears whole or not at all (Azure drops uncommitted
// blocks after a week). A blob that is there is written over, last
// writer winning: the exporter writes only blobs its Info did not find
// with their size, and a blob's name is its digest, so the bytes are the
// same unless the blob was damaged. (BuildKit writes a blob only if it
// does not exist, If-None-Match: *, which keeps a damaged one; it sends
// the bytes anyway.) A missing container is created (withContainer).
func (b *backend) Put(ctx context.Context, name string, body io.ReaderAt, size int64, mediaType string) error {
	bb := b.cc.NewBlockBlobClient(name)
	var headers *blob.HTTPHeaders
	if mediaType != "" {
		headers = &blob.HTTPHeaders{BlobContentType: &mediaType}
	}
	return classify(b.withContainer(ctx, func() error {
		if size <= b.opts.blockSize {
			_, err := bb.Upload(ctx, streaming.NopCloser(io.NewSectionReader(body, 0, size)), &blockblob.UploadOptions{HTTPHeaders: headers})
			return err
		}
		ids, err := b.stageBlocks(ctx, bb, body, size)
		if err != nil {
			return err
		}
		_, err = bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{HTTPHeaders: headers})
		return err
	}))
}

// stageBlocks stages body in blocks of the block size (larger for blobs
// that would need more than 50,000) and returns their IDs, in order.
func (b *backend) stageBlocks(ctx context.Context, bb *blockblob.Client, body io.ReaderAt, size int64) ([]string, error) {
	blockSize := max(b.opts.blockSize, (size+maxBlocks-1)/maxBlocks)
	n := (size + blockSize - 1) / blockSize
	// IDs unique to this upload (several writers may stage blocks of one
	// blob at once), all of one length, as Azure requires.
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, errors.Wrap(errdefs.ErrInternal, "making block IDs")
	}
	prefix := hex.EncodeToString(nonce[:])
	ids := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.opts.blockConcurrency)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%05d", prefix, i))
		g.Go(func() error {
			off := i * blockSize
			length := min(blockSize, size-off)
			_, err := bb.StageBlock(gctx, ids[i], streaming.NopCloser(io.NewSectionReader(body, off, length)), nil)
			return errors.Wrapf(classify(err), "block %d of %d", i+1, n)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return ids, ctx.Err()
}
