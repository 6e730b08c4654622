package regtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/distribution/v3/configuration"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/buildcache/remotecache/registry"
)

// validatingRegistry starts a registry with the reference registry's
// default validation of indexes (validation.manifests.indexes.platforms:
// all): every entry of an index or manifest list must be a manifest it
// has, so it refuses every index-form cache, as ECR, GAR and Quay do.
func validatingRegistry(t *testing.T) *server {
	return startRegistryWith(t, nil, func(cfg *configuration.Configuration) {
		cfg.Validation.Manifests.Indexes.Platforms = "all"
	})
}

// The hint of an index refused, in the library's words and the tool's.
const hintLibrary, hintCLI = "remotecache.FormatImageManifest", "--format image-manifest"

// TestIndexRefused exports a cache in the index forms to a registry that
// refuses them (issue 9.11): the error gives the registry's error once,
// though the registry lists it once per blob, and the hint to use the
// image-manifest form, which the same registry takes.
func TestIndexRefused(t *testing.T) {
	ctx := context.Background()
	srv := validatingRegistry(t)
	g := cachegen.NewWithOptions(9, 12, cachegen.Options{BlobSize: 1 << 10})
	for _, f := range []remotecache.ManifestFormat{remotecache.FormatOCIIndex, remotecache.FormatManifestList} {
		t.Run(f.String(), func(t *testing.T) {
			r := newRemote(t, srv.Host+"/cache/"+f.String()+":v1")
			_, err := export(ctx, r, g, f)
			if err == nil {
				t.Fatal("the registry took an index of blobs: is its validation on?")
			}
			msg := err.Error()
			if n := strings.Count(msg, "MANIFEST_BLOB_UNKNOWN"); n != 1 {
				t.Errorf("the error says MANIFEST_BLOB_UNKNOWN %d times, want once: %s", n, msg)
			}
			if !strings.Contains(msg, hintLibrary) || !strings.Contains(msg, hintCLI) {
				t.Errorf("the error gives no hint to use the image-manifest form: %s", msg)
			}
			var re *registry.Error
			if !errors.As(err, &re) || len(re.Errors) < 2 || re.Hint == "" {
				t.Errorf("the error is not a *registry.Error with every error of the registry's list and a hint: %#v", re)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("the error is not of class invalid argument: %v", err)
			}
			t.Logf("%s: %v (the registry listed %d errors)", f, err, len(re.Errors))

			// The form the hint names goes through.
			if _, err := export(ctx, r, g, remotecache.FormatImageManifest); err != nil {
				t.Fatalf("image-manifest form: %v", err)
			}
		})
	}

	// An image manifest refused for the same reason is not an index: it
	// gets no hint.
	t.Run("image manifest", func(t *testing.T) {
		missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("not pushed"), Size: 10}
		dt, err := json.Marshal(ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    ocispec.Descriptor{MediaType: remotecache.CacheConfigMediaTypeV0, Digest: digest.FromString("no config"), Size: 9},
			Layers:    []ocispec.Descriptor{missing, missing},
		})
		if err != nil {
			t.Fatal(err)
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
		err = content.WriteBlob(ctx, newRemote(t, srv.Host+"/cache/plain:v1"), "", bytes.NewReader(dt), desc)
		if err == nil {
			t.Fatal("the registry took a manifest of blobs it does not have")
		}
		if n := strings.Count(err.Error(), "MANIFEST_BLOB_UNKNOWN"); n != 1 {
			t.Errorf("the error says MANIFEST_BLOB_UNKNOWN %d times, want once: %v", n, err)
		}
		var re *registry.Error
		if !errors.As(err, &re) || len(re.Errors) < 2 {
			t.Errorf("the error is not a *registry.Error with every error of the registry's list: %#v", re)
		}
		if strings.Contains(err.Error(), hintCLI) || re != nil && re.Hint != "" {
			t.Errorf("an image manifest refused gets the hint for indexes: %v", err)
		}
	})
}

// TestCLIIndexRefused copies the BuildKit fixture with the built binary
// into a registry that refuses index-form caches: one line, the
// registry's error once, the hint; then in the form the hint names.
func TestCLIIndexRefused(t *testing.T) {
	bin := buildCLI(t)
	src := cachetest.Fixture(t)
	srv := validatingRegistry(t)
	loc := "registry:" + srv.Host + "/cache:v1"
	for _, format := range []string{"oci-index", "manifest-list"} {
		t.Run(format, func(t *testing.T) {
			r := clitest.Run(t, bin, "copy", "--quiet", "oci:"+src, loc, "--format", format)
			clitest.FailsWith(t, r, hintCLI)
			if n := strings.Count(r.Stderr, "MANIFEST_BLOB_UNKNOWN"); n != 1 {
				t.Errorf("stderr says MANIFEST_BLOB_UNKNOWN %d times, want once:\n%s", n, r.Stderr)
			}
			t.Logf("exit 1: %s", strings.TrimSpace(r.Stderr))
		})
	}
	if r := clitest.OK(t, bin, "copy", "--quiet", "oci:"+src, loc, "--format", "image-manifest"); r.Stdout != loc+" "+cachetest.FixtureManifest+" image-manifest\n" {
		t.Errorf("copy --format image-manifest printed %q", r.Stdout)
	}
}
