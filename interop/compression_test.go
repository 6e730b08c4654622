package interop

import (
	"context"
	"io"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	cdcompression "github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/moby/buildkit/util/compression"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// TestBuildKitReadsConverted converts the layers of the cache a real
// buildkitd wrote (gzip) and has BuildKit read the result in each manifest
// form: its importer gets the config we wrote, every record of the
// original with its links and its result (on the converted blobs, mapped
// back by diffID), and every step hits through its key storage; its own
// decompression (containerd's DecompressStream) gives each layer's
// diffID.
func TestBuildKitReadsConverted(t *testing.T) {
	src, desc, m, orig := lcOriginal(t)
	origByDiff := map[string]digest.Digest{}
	for _, l := range m.Layers {
		origByDiff[l.Annotations[remotecache.AnnotationUncompressed]] = l.Digest
	}
	for _, c := range []remotecache.CompressionConfig{
		{Type: remotecache.CompressionZstd},
		{Type: remotecache.CompressionUncompressed},
		{Type: remotecache.CompressionGzip, Level: new(9), Force: true},
	} {
		for _, f := range forms {
			name := c.String() + ", " + f.ours.String()
			dst := newStore(t, "")
			md := cachetest.Copy(t, src, desc, dst, remotecache.WithManifestFormat(f.ours), remotecache.WithCompression(c))

			bk, cc := lcBuildKitConfig(t, name, dst, md)
			_, descs, _ := cachetest.Marshal(t, cc)
			mapped := *bk
			mapped.Layers = append([]remotecache.CacheLayer(nil), bk.Layers...)
			for i, l := range mapped.Layers {
				d := descs[l.Blob].Descriptor
				if d.Digest == origByDiff[d.Annotations[remotecache.AnnotationUncompressed]] {
					t.Errorf("%s: layer %s not converted", name, d.Digest)
				}
				if !compression.IsMediaType(bkType(c.Type), d.MediaType) {
					t.Errorf("%s: layer %s has media type %s", name, d.Digest, d.MediaType)
				}
				bkCheckDiffID(t, name, dst, d)
				mapped.Layers[i].Blob = origByDiff[d.Annotations[remotecache.AnnotationUncompressed]]
			}
			lcIntact(t, name, orig, &mapped, nil, len(orig.Records))
			lcCheckHits(t, name, cc, orig, nil)
		}
	}
}

// bkType is BuildKit's compression type of c.
func bkType(c remotecache.Compression) compression.Type {
	switch c {
	case remotecache.CompressionGzip:
		return compression.Gzip
	case remotecache.CompressionZstd:
		return compression.Zstd
	default:
		return compression.Uncompressed
	}
}

// bkCheckDiffID decompresses the layer d of cs as BuildKit does for a
// layer that is not eStargz (util/compression's decompress: containerd's
// DecompressStream, which tells the compression from the bytes) and
// checks the bytes have d's diffID.
func bkCheckDiffID(t *testing.T, name string, cs content.Store, d ocispec.Descriptor) {
	t.Helper()
	ra, err := cs.ReaderAt(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rc, err := cdcompression.DecompressStream(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		t.Fatalf("%s: layer %s: DecompressStream: %v", name, d.Digest, err)
	}
	defer rc.Close()
	dg := digest.Canonical.Digester()
	if _, err := io.Copy(dg.Hash(), rc); err != nil {
		t.Fatalf("%s: layer %s: DecompressStream: %v", name, d.Digest, err)
	}
	if got, want := dg.Digest().String(), d.Annotations[remotecache.AnnotationUncompressed]; got != want {
		t.Errorf("%s: layer %s decompresses to %s, diffID %s", name, d.Digest, got, want)
	}
}
