package regtest

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
)

// The command line tool end to end against the reference registry: the
// binary is built from ../../cmd/remotecache (in the root module) and run
// as a user would run it, on the BuildKit cache in ../../testdata.

// buildCLI builds the remotecache command into a temporary directory of
// t and returns its path.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin, err := clitest.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestCLI copies the BuildKit fixture into the registry in each manifest
// form with the built binary, inspects and verifies it there, copies it
// back into a layout and compares, copies it again (nothing is uploaded),
// and checks the failure of a tag that does not exist.
func TestCLI(t *testing.T) {
	bin := buildCLI(t)
	src := cachetest.Fixture(t)
	fixtureManifest, fixtureConfig := cachetest.LayoutTagged(t, src, "latest")
	if fixtureManifest.Digest != cachetest.FixtureManifest {
		t.Fatalf("fixture manifest %s, want %s", fixtureManifest.Digest, cachetest.FixtureManifest)
	}
	wantConfig := cachetest.LayoutBlob(t, src, fixtureConfig.Digest)
	srv := startRegistry(t, nil)

	for _, format := range []string{"image-manifest", "oci-index", "manifest-list"} {
		t.Run(format, func(t *testing.T) {
			loc := "registry:" + srv.Host + "/cache/app-" + format + ":v1"

			// Into the registry.
			before := srv.uploaded.Load()
			r := clitest.OK(t, bin, "copy", "oci:"+src, loc, "--format", format)
			if !strings.HasPrefix(r.Stdout, loc+" sha256:") || !strings.HasSuffix(r.Stdout, " "+format+"\n") {
				t.Errorf("copy printed %q", r.Stdout)
			}
			if format == "image-manifest" && r.Stdout != loc+" "+cachetest.FixtureManifest+" "+format+"\n" {
				t.Errorf("copy printed %q, want BuildKit's manifest %s", r.Stdout, cachetest.FixtureManifest)
			}
			if !strings.Contains(r.Stderr, "writing layer sha256:") || !strings.Contains(r.Stderr, "tagging "+loc+": done") {
				t.Errorf("no progress lines on stderr:\n%s", r.Stderr)
			}
			sent := srv.uploaded.Load() - before

			// Inspect, as JSON and as text.
			rep := clitest.Inspect(t, bin, nil, loc)
			if rep.Format != format {
				t.Errorf("inspect: format %q, want %q", rep.Format, format)
			}
			if rep.Counts.Records != cachetest.FixtureRecords || rep.Counts.Layers != cachetest.FixtureLayers || rep.Counts.Blobs != cachetest.FixtureBlobs || rep.Counts.Missing != 0 {
				t.Errorf("inspect: counts %+v, want %d records, %d layers, %d blobs, none missing", rep.Counts, cachetest.FixtureRecords, cachetest.FixtureLayers, cachetest.FixtureBlobs)
			}
			if rep.Config.Digest != fixtureConfig.Digest {
				t.Errorf("inspect: config %s, want the fixture's %s", rep.Config.Digest, fixtureConfig.Digest)
			}
			if format == "image-manifest" && rep.Manifest.Digest != cachetest.FixtureManifest {
				t.Errorf("inspect: manifest %s, want BuildKit's %s", rep.Manifest.Digest, cachetest.FixtureManifest)
			}
			var blobBytes int64
			for _, b := range rep.Blobs {
				blobBytes += b.Size
			}
			// The layer blobs and the config are blobs the registry read;
			// the manifest is not an upload.
			if want := blobBytes + rep.Config.Size; sent != want {
				t.Errorf("first copy uploaded %d blob bytes, want %d (layers and config)", sent, want)
			}
			text := clitest.OK(t, bin, "inspect", loc).Stdout
			for _, want := range []string{loc, format, "11 records, 8 layers, 8 distinct blobs", string(fixtureConfig.Digest)} {
				if !strings.Contains(text, want) {
					t.Errorf("inspect does not say %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "MISSING") {
				t.Errorf("inspect flags missing blobs:\n%s", text)
			}

			// Verify.
			if r := clitest.OK(t, bin, "verify", loc); !strings.HasPrefix(r.Stdout, loc+": ok: manifest "+string(rep.Manifest.Digest)) {
				t.Errorf("verify printed %q", r.Stdout)
			}

			// Back into a layout, as an image manifest: the fixture's
			// bytes again.
			out := filepath.Join(t.TempDir(), "out")
			clitest.OK(t, bin, "copy", "--quiet", loc, "oci:"+out)
			gotManifest, gotConfig := cachetest.LayoutTagged(t, out, "latest")
			if gotManifest.Digest != cachetest.FixtureManifest {
				t.Errorf("copied back: manifest %s, want the fixture's %s", gotManifest.Digest, cachetest.FixtureManifest)
			}
			if got := cachetest.LayoutBlob(t, out, gotConfig.Digest); !bytes.Equal(got, wantConfig) {
				t.Errorf("copied back: config differs from the fixture's:\n got %s\nwant %s", got, wantConfig)
			}
			clitest.OK(t, bin, "verify", "--quiet", "oci:"+out)

			// Again: every blob is in the repository; no blob byte is
			// sent, and the tag still names the same manifest.
			before = srv.uploaded.Load()
			posts := srv.Requests("POST upload")
			r = clitest.OK(t, bin, "copy", "oci:"+src, loc, "--format", format)
			if n := srv.uploaded.Load() - before; n != 0 {
				t.Errorf("second copy uploaded %d blob bytes, want 0", n)
			}
			if n := srv.Requests("POST upload") - posts; n != 0 {
				t.Errorf("second copy started %d uploads, want 0", n)
			}
			if !strings.Contains(r.Stderr, ": skipped") {
				t.Errorf("second copy skipped nothing:\n%s", r.Stderr)
			}
			if got := clitest.Inspect(t, bin, nil, loc).Manifest; got.Digest != rep.Manifest.Digest {
				t.Errorf("after the second copy the tag names %s, before %s", got.Digest, rep.Manifest.Digest)
			}
		})
	}

	t.Run("missing tag", func(t *testing.T) {
		loc := "registry:" + srv.Host + "/cache/missing:v1"
		r := clitest.Run(t, bin, "verify", loc)
		clitest.FailsWith(t, r, "not found", "cache/missing")
		if r.Stdout != "" {
			t.Errorf("stdout %q, want nothing", r.Stdout)
		}
		t.Logf("verify %s: exit 1: %s", loc, strings.TrimSpace(r.Stderr))
	})
}
