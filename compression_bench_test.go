package remotecache_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cputime"
)

// The layer compression benchmarks (BENCHMARKS.md, "Layer compression")
// run on the file REMOTECACHE_BENCH_LAYER names, an uncompressed layer
// tar; without it, on 16 MiB of czPayload.
//
//	REMOTECACHE_BENCH_LAYER=/tmp/layer.tar go test -run '^$' -bench 'Codecs|Convert' -benchtime 3x .

// bzLayer returns the bytes of the benchmarks' layer.
func bzLayer(b *testing.B) []byte {
	b.Helper()
	if p := os.Getenv("REMOTECACHE_BENCH_LAYER"); p != "" {
		dt, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return dt
	}
	return czPayload(16<<20, 14)
}

// bzCodec is one compressor and its decompressor.
type bzCodec struct {
	name string
	enc  func(io.Writer) (io.WriteCloser, error)
	dec  func(io.Reader) (io.Reader, func(), error)
}

func bzKlauspostGzip(level int) func(io.Writer) (io.WriteCloser, error) {
	return func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, level) }
}

func bzStdGzip(level int) func(io.Writer) (io.WriteCloser, error) {
	return func(w io.Writer) (io.WriteCloser, error) { return stdgzip.NewWriterLevel(w, level) }
}

// bzZstd encodes as WithCompression does: one goroutine per stream.
func bzZstd(level int) func(io.Writer) (io.WriteCloser, error) {
	return func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1))
	}
}

var (
	bzGzipDec = func(r io.Reader) (io.Reader, func(), error) {
		zr, err := gzip.NewReader(r)
		return zr, func() {}, err
	}
	bzStdGzipDec = func(r io.Reader) (io.Reader, func(), error) {
		zr, err := stdgzip.NewReader(r)
		return zr, func() {}, err
	}
	bzZstdDec = func(r io.Reader) (io.Reader, func(), error) {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
)

var bzCodecs = []bzCodec{
	{"klauspost-gzip-1", bzKlauspostGzip(1), bzGzipDec},
	{"klauspost-gzip-5-default", bzKlauspostGzip(gzip.DefaultCompression), bzGzipDec},
	{"klauspost-gzip-9", bzKlauspostGzip(9), bzGzipDec},
	{"stdlib-gzip-1", bzStdGzip(1), bzStdGzipDec},
	{"stdlib-gzip-6-default", bzStdGzip(stdgzip.DefaultCompression), bzStdGzipDec},
	{"klauspost-zstd-1-fastest", bzZstd(1), bzZstdDec},
	{"klauspost-zstd-3-default", bzZstd(3), bzZstdDec},
	{"klauspost-zstd-7-better", bzZstd(7), bzZstdDec},
	{"klauspost-zstd-19-best", bzZstd(19), bzZstdDec},
	// Not what WithCompression does (one goroutine per blob, blobs in
	// parallel): zstd's own goroutines within one stream, for comparison.
	{"klauspost-zstd-3-default-2-goroutines", func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(2))
	}, func(r io.Reader) (io.Reader, func(), error) {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}},
}

// BenchmarkCodecs compresses and decompresses the layer in memory with each
// codec, one goroutine each (but the last codec's): MB/s of uncompressed
// bytes, and the ratio of compressed to uncompressed size.
func BenchmarkCodecs(b *testing.B) {
	data := bzLayer(b)
	for _, c := range bzCodecs {
		var buf bytes.Buffer
		bzEncode(b, c, &buf, data)
		compressed := buf.Bytes()
		b.Run(c.name+"/compress", func(b *testing.B) {
			bzLoop(b, len(data), func() { bzEncode(b, c, io.Discard, data) })
			b.ReportMetric(float64(len(compressed))/float64(len(data)), "ratio")
		})
		b.Run(c.name+"/decompress", func(b *testing.B) {
			bzLoop(b, len(data), func() {
				r, done, err := c.dec(bytes.NewReader(compressed))
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
					b.Fatalf("%d bytes, %v", n, err)
				}
				done()
			})
		})
	}
}

// bzLoop runs f, which handles n bytes, as b says, and reports MB/s both
// of elapsed time and of the process's CPU time (the steadier figure on a
// loaded machine: it counts only what the benchmark ran, GC included).
func bzLoop(b *testing.B, n int, f func()) {
	b.SetBytes(int64(n))
	start := cputime.Process()
	for b.Loop() {
		f()
	}
	if cpu := cputime.Process() - start; cpu > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}

func bzEncode(b *testing.B, c bzCodec, w io.Writer, data []byte) {
	b.Helper()
	zw, err := c.enc(w)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		zw.Write(data[off:min(off+1<<20, len(data))])
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConvert exports a one-layer cache into a containerd local store
// with WithCompression, for each direction: the source blob read from a
// local store, its digest and diffID checked, decompressed, compressed into
// the spool, then written to the store. MB/s of uncompressed bytes. Sources
// are gzip as BuildKit writes it (Go's gzip, default level), zstd at
// klauspost's default, or the tar.
func BenchmarkConvert(b *testing.B) {
	data := bzLayer(b)
	src := tcStore(b)
	u, g, z := remotecache.CompressionUncompressed, remotecache.CompressionGzip, remotecache.CompressionZstd
	for _, tc := range []struct {
		from remotecache.Compression
		to   remotecache.CompressionConfig
	}{
		{g, remotecache.CompressionConfig{Type: z}},
		{z, remotecache.CompressionConfig{Type: g}},
		{u, remotecache.CompressionConfig{Type: z}},
		{u, remotecache.CompressionConfig{Type: g}},
		{g, remotecache.CompressionConfig{Type: u}},
		{z, remotecache.CompressionConfig{Type: u}},
		{g, remotecache.CompressionConfig{Type: g, Force: true}},
	} {
		l := czLayer(b, src, tc.from, data)
		b.Run(tc.from.String()+"-to-"+tc.to.String(), func(b *testing.B) {
			bzLoop(b, len(data), func() {
				exp, err := remotecache.NewExporter(tcStore(b), remotecache.WithCompression(tc.to), remotecache.WithSpoolDir(b.TempDir()))
				if err != nil {
					b.Fatal(err)
				}
				tcAdd(b, exp, tcDigest("layer"), nil, tcResult(src, 1, l))
				if _, err := exp.Finalize(context.Background()); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
