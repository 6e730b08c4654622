package cachegen

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"

	"github.com/pkg/errors"

	digest "github.com/opencontainers/go-digest"
)

// Blob bytes are made in blocks: block k of a blob is the ChaCha8 stream
// seeded by (Key, k). Any range can be made without the ones before it, so
// large blobs are never held in memory whole.
const blockSize = 16 << 10

func blockSeed(key uint64, block int64) [32]byte {
	var s [32]byte
	copy(s[:8], "cachegen")
	binary.LittleEndian.PutUint64(s[8:], key)
	binary.LittleEndian.PutUint64(s[16:], uint64(block))
	return s
}

// Size returns the blob's size in bytes.
func (b Blob) Size() int64 { return b.Descriptor.Size }

// ReadAt implements io.ReaderAt over the blob's bytes.
func (b Blob) ReadAt(p []byte, off int64) (int, error) {
	size := b.Descriptor.Size
	if off < 0 {
		return 0, errors.New("cachegen: negative offset")
	}
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > size-off {
		p = p[:size-off]
	}
	var scratch []byte
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		block := pos / blockSize
		in := int(pos - block*blockSize)
		end := min(blockSize, in+len(p)-n)
		c := rand.NewChaCha8(blockSeed(b.Key, block))
		if in == 0 {
			c.Read(p[n : n+end])
		} else {
			if scratch == nil {
				scratch = make([]byte, blockSize)
			}
			c.Read(scratch[:end])
			copy(p[n:], scratch[in:end])
		}
		n += end - in
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Bytes returns the blob's bytes.
func (b Blob) Bytes() []byte {
	p := make([]byte, b.Descriptor.Size)
	b.ReadAt(p, 0)
	return p
}

func (b Blob) computeDigest() digest.Digest {
	if b.Descriptor.Size <= 4096 {
		return digest.FromBytes(b.Bytes())
	}
	h := sha256.New()
	buf := make([]byte, blockSize)
	for off := int64(0); off < b.Descriptor.Size; off += blockSize {
		n, _ := b.ReadAt(buf[:min(blockSize, b.Descriptor.Size-off)], off)
		h.Write(buf[:n])
	}
	return digest.NewDigest(digest.SHA256, h)
}
