package remotecache

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Compression is the compression of a layer blob, as its media type says:
// what WithCompression converts layers to on export.
type Compression int

const (
	// CompressionUncompressed is a plain tar
	// (application/vnd.oci.image.layer.v1.tar).
	CompressionUncompressed Compression = iota + 1
	// CompressionGzip is a gzip stream (…tar+gzip), BuildKit's default.
	CompressionGzip
	// CompressionZstd is a Zstandard stream (…tar+zstd).
	CompressionZstd
)

// compressions lists every Compression.
var compressions = []Compression{CompressionUncompressed, CompressionGzip, CompressionZstd}

// valid tells whether c is one of the compressions. The zero value is not.
func (c Compression) valid() bool { return c >= CompressionUncompressed && c <= CompressionZstd }

// String returns the name BuildKit's compression attribute and the command
// line use for c: "uncompressed", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case CompressionUncompressed:
		return "uncompressed"
	case CompressionGzip:
		return "gzip"
	case CompressionZstd:
		return "zstd"
	default:
		return fmt.Sprintf("Compression(%d)", int(c))
	}
}

// ParseCompression parses the name String returns.
func ParseCompression(s string) (Compression, error) {
	return parseName(compressions, s, "compression", "gzip, zstd or uncompressed")
}

// mediaType is the OCI layer media type of c.
func (c Compression) mediaType() string {
	switch c {
	case CompressionGzip:
		return ocispec.MediaTypeImageLayerGzip
	case CompressionZstd:
		return ocispec.MediaTypeImageLayerZstd
	default:
		return ocispec.MediaTypeImageLayer
	}
}

// layerCompression tells the compression of a layer of media type mt, in
// its OCI or Docker form, and false for any other type: non-distributable
// (foreign) layers, which are not converted, and types that are not
// layers.
func layerCompression(mt string) (Compression, bool) {
	switch toOCILayerType[mt] {
	case ocispec.MediaTypeImageLayer:
		return CompressionUncompressed, true
	case ocispec.MediaTypeImageLayerGzip:
		return CompressionGzip, true
	case ocispec.MediaTypeImageLayerZstd:
		return CompressionZstd, true
	default:
		return 0, false
	}
}

// Compression levels: the ranges WithCompression accepts, and the defaults.
const (
	// MinGzipLevel and MaxGzipLevel bound a gzip level: those of Go's gzip
	// package, which BuildKit uses: -2 (Huffman coding only), -1 (the
	// default), 0 (stored, no compression), 1 (fastest) to 9 (smallest).
	MinGzipLevel, MaxGzipLevel = gzip.HuffmanOnly, gzip.BestCompression
	// DefaultGzipLevel is the gzip level without CompressionConfig.Level:
	// klauspost/compress's default, its level 5.
	DefaultGzipLevel = gzip.DefaultCompression
	// MinZstdLevel and MaxZstdLevel bound a zstd level, as the zstd tool
	// numbers them. The encoder (klauspost/compress) has four levels, and
	// a level maps to them as BuildKit maps its compression-level
	// (zstd.EncoderLevelFromZstd): 1–2 fastest, 3–5 default, 6–9 better,
	// 10–22 best. So 10 and 22 give the same bytes.
	MinZstdLevel, MaxZstdLevel = 1, 22
	// DefaultZstdLevel is the zstd level without CompressionConfig.Level:
	// the encoder's default, about the zstd tool's level 3.
	DefaultZstdLevel = 3
)

// CompressionConfig is what WithCompression converts layers to: BuildKit's
// compression, compression-level and force-compression.
type CompressionConfig struct {
	// Type is the compression every layer gets. Required.
	Type Compression
	// Level is the compression level; nil gives DefaultGzipLevel or
	// DefaultZstdLevel. Gzip takes MinGzipLevel to MaxGzipLevel, zstd
	// MinZstdLevel to MaxZstdLevel; an uncompressed layer has no level,
	// so a Level with CompressionUncompressed is an error.
	Level *int
	// Force recompresses, at Level, the layers already of Type too.
	// Without it they are copied as they are. It changes nothing for
	// CompressionUncompressed.
	Force bool
}

// String gives c as BuildKit's attributes would: "zstd,level=9,force".
func (c CompressionConfig) String() string {
	s := c.Type.String()
	if c.Level != nil {
		s += fmt.Sprintf(",level=%d", *c.Level)
	}
	if c.Force {
		s += ",force"
	}
	return s
}

// validate checks c: a known type and a level in its range.
func (c CompressionConfig) validate() error {
	if !c.Type.valid() {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "compression: unknown type %d (want CompressionGzip, CompressionZstd or CompressionUncompressed)", int(c.Type))
	}
	if c.Level == nil {
		return nil
	}
	l := *c.Level
	switch c.Type {
	case CompressionGzip:
		if l < MinGzipLevel || l > MaxGzipLevel {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "compression: gzip level %d: want %d to %d", l, MinGzipLevel, MaxGzipLevel)
		}
	case CompressionZstd:
		if l < MinZstdLevel || l > MaxZstdLevel {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "compression: zstd level %d: want %d to %d", l, MinZstdLevel, MaxZstdLevel)
		}
	default:
		return errors.Wrapf(errdefs.ErrInvalidArgument, "compression: level %d: an uncompressed layer has no level", l)
	}
	return nil
}

// level is c's level, or its type's default.
func (c CompressionConfig) level() int {
	switch {
	case c.Level != nil:
		return *c.Level
	case c.Type == CompressionZstd:
		return DefaultZstdLevel
	default:
		return DefaultGzipLevel
	}
}

// zstdLevel is the encoder level of a zstd level, as BuildKit maps it.
func zstdLevel(l int) zstd.EncoderLevel { return zstd.EncoderLevelFromZstd(l) }
