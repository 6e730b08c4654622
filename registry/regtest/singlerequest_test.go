package regtest

import (
	"bytes"
	"context"
	"io"
	"log"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// startGGCRRegistry starts go-containerregistry's registry (the one crane
// is tested against), in memory, on 127.0.0.1. Unlike distribution's, it
// completes an upload with the POST that carries the blob (?digest=), as
// the distribution spec allows.
func startGGCRRegistry(t testing.TB) *server {
	t.Helper()
	s := &server{requests: map[string]int{}}
	s.Host = serve(t, s.count(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))))
	return s
}

// A registry that takes a blob in the POST that opens the upload gets
// every blob of an export that way: one request a blob, no PUT into an
// upload session once the first POST has shown it (one blob at a time
// here, so that no upload starts while the first finds out). The cache
// reads back the same, and an export again uploads nothing.
func TestSingleRequestUploads(t *testing.T) {
	ctx := context.Background()
	g := cachegen.NewWithOptions(1, 25, cachegen.Options{BlobSize: 8 << 10})
	want, wantBytes := wantConfig(ctx, t, g)
	blobs := len(exportedBlobs(ctx, t, g)) + 1 // and the config

	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			srv := startGGCRRegistry(t) // its blobs are in every repository
			r := newRemote(t, srv.Host+"/cache/"+f.String()+":latest")
			exportOnce := func() {
				t.Helper()
				e, err := remotecache.NewExporter(r, remotecache.WithManifestFormat(f), remotecache.WithConcurrency(1))
				if err != nil {
					t.Fatal(err)
				}
				if err := cachegen.Replay(e, g, nil, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := cachetest.Finalize(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			before, sent := srv.Counts(), srv.uploaded.Load()
			exportOnce()
			got := srv.CountsSince(before)
			if got["POST upload"] != blobs || got["PUT upload"] != 0 || got["PATCH upload"] != 0 {
				t.Errorf("requests %v: want %d POSTs to uploads (a blob each) and no PUT or PATCH", got, blobs)
			}
			if n := srv.uploaded.Load() - sent; n != wantBytes {
				t.Errorf("uploaded %d bytes, want %d (layers and config, once each)", n, wantBytes)
			}
			if cfg := importConfig(ctx, t, r); !bytes.Equal(cfg, want) {
				t.Fatalf("imported config differs:\n got %s\nwant %s", cfg, want)
			}

			sent = srv.uploaded.Load()
			exportOnce()
			if n := srv.uploaded.Load() - sent; n != 0 {
				t.Errorf("export again uploaded %d bytes, want 0", n)
			}
		})
	}
}

// With blobs uploaded side by side, those that start while the first POST
// finds out go through an upload session; every blob is still sent once
// and the cache reads back the same.
func TestSingleRequestUploadsConcurrent(t *testing.T) {
	ctx := context.Background()
	g := cachegen.NewWithOptions(2, 60, cachegen.Options{BlobSize: 8 << 10})
	want, wantBytes := wantConfig(ctx, t, g)
	srv := startGGCRRegistry(t)
	r := newRemote(t, srv.Host+"/cache:latest")
	if _, err := export(ctx, r, g, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}
	if n := srv.uploaded.Load(); n != wantBytes {
		t.Errorf("uploaded %d bytes, want %d (layers and config, once each)", n, wantBytes)
	}
	blobs := len(exportedBlobs(ctx, t, g)) + 1
	if got := srv.Counts(); got["POST upload"] != blobs || got["PUT upload"] > blobs-1 {
		t.Errorf("requests %v: want %d POSTs to uploads, at least the first of them the whole upload", got, blobs)
	}
	if cfg := importConfig(ctx, t, r); !bytes.Equal(cfg, want) {
		t.Fatalf("imported config differs:\n got %s\nwant %s", cfg, want)
	}
}
