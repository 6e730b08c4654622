package regtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The command line tool end to end against the reference registry: the
// binary is built from ../../cmd/remotecache and run as a user would run
// it, on the BuildKit cache in ../../testdata.

// cliFixtureManifest is the digest of the manifest of the BuildKit cache in
// testdata, which an image-manifest export of it reproduces byte for byte.
const cliFixtureManifest = "sha256:5bbdd4698405bbfd20d0e147af898c13cf647d33b7e74b156c91f3cd560556bd"

// The BuildKit cache in testdata: 11 records, 8 layers, 8 distinct blobs.
const cliFixtureRecords, cliFixtureLayers, cliFixtureBlobs = 11, 8, 8

// buildCLI builds the remotecache command into a temporary directory of
// t and returns its path. It is built in the main module (the repository
// root, whose go.mod is the one a user builds with), not in this one.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "remotecache")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/buildcache/remotecache/cmd/remotecache")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build github.com/buildcache/remotecache/cmd/remotecache: %v\n%s", err, out)
	}
	return bin
}

type cliRun struct {
	code           int
	stdout, stderr string
}

// cliExec runs the tool bin with args.
func cliExec(t *testing.T, bin string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("remotecache %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// cliOK runs the tool and fails the test unless it exits 0.
func cliOK(t *testing.T, bin string, args ...string) cliRun {
	t.Helper()
	r := cliExec(t, bin, args...)
	if r.code != 0 {
		t.Fatalf("remotecache %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// cliReport is the part of the JSON of `inspect --json` the tests read.
type cliReport struct {
	Location string             `json:"location"`
	Format   string             `json:"format"`
	Manifest ocispec.Descriptor `json:"manifest"`
	Config   ocispec.Descriptor `json:"config"`
	Counts   struct {
		Records int `json:"records"`
		Layers  int `json:"layers"`
		Blobs   int `json:"blobs"`
		Missing int `json:"missing"`
	} `json:"counts"`
	TotalBytes int64 `json:"totalBytes"`
	Blobs      []struct {
		Digest  digest.Digest `json:"digest"`
		Size    int64         `json:"size"`
		Problem string        `json:"problem"`
	} `json:"blobs"`
}

func cliInspectJSON(t *testing.T, bin, loc string) cliReport {
	t.Helper()
	out := cliOK(t, bin, "inspect", loc, "--json").stdout
	var r cliReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("inspect --json %s: %v\n%s", loc, err, out)
	}
	return r
}

// cliFixture copies the BuildKit cache in testdata to a new directory, so
// that nothing is ever written into testdata.
func cliFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fixture")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "testdata", "buildkit-local-cache"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// layoutBlob reads a blob of an OCI layout directory.
func layoutBlob(t *testing.T, dir string, d digest.Digest) []byte {
	t.Helper()
	dt, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(dt); got != d {
		t.Fatalf("blob %s of %s has the bytes of %s", d, dir, got)
	}
	return dt
}

// layoutTagged returns the manifest descriptor an OCI layout's index.json
// gives the tag, and the manifest's config descriptor.
func layoutTagged(t *testing.T, dir, tag string) (manifest, config ocispec.Descriptor) {
	t.Helper()
	dt, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == tag {
			manifest = m
		}
	}
	if manifest.Digest == "" {
		t.Fatalf("%s: no tag %q in index.json:\n%s", dir, tag, dt)
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(layoutBlob(t, dir, manifest.Digest), &mf); err != nil {
		t.Fatal(err)
	}
	return manifest, mf.Config
}

// TestCLI copies the BuildKit fixture into the registry in each manifest
// form with the built binary, inspects and verifies it there, copies it
// back into a layout and compares, copies it again (nothing is uploaded),
// and checks the failure of a tag that does not exist.
func TestCLI(t *testing.T) {
	bin := buildCLI(t)
	src := cliFixture(t)
	fixtureManifest, fixtureConfig := layoutTagged(t, src, "latest")
	if fixtureManifest.Digest != cliFixtureManifest {
		t.Fatalf("fixture manifest %s, want %s", fixtureManifest.Digest, cliFixtureManifest)
	}
	wantConfig := layoutBlob(t, src, fixtureConfig.Digest)
	srv := startRegistry(t, nil)

	for _, format := range []string{"image-manifest", "oci-index", "manifest-list"} {
		t.Run(format, func(t *testing.T) {
			loc := "registry:" + srv.Host + "/cache/app-" + format + ":v1"

			// Into the registry.
			before := srv.uploaded.Load()
			r := cliOK(t, bin, "copy", "oci:"+src, loc, "--format", format)
			if !strings.HasPrefix(r.stdout, loc+" sha256:") || !strings.HasSuffix(r.stdout, " "+format+"\n") {
				t.Errorf("copy printed %q", r.stdout)
			}
			if format == "image-manifest" && r.stdout != loc+" "+cliFixtureManifest+" "+format+"\n" {
				t.Errorf("copy printed %q, want BuildKit's manifest %s", r.stdout, cliFixtureManifest)
			}
			if !strings.Contains(r.stderr, "writing layer sha256:") || !strings.Contains(r.stderr, "tagging "+loc+": done") {
				t.Errorf("no progress lines on stderr:\n%s", r.stderr)
			}
			sent := srv.uploaded.Load() - before

			// Inspect, as JSON and as text.
			rep := cliInspectJSON(t, bin, loc)
			if rep.Format != format {
				t.Errorf("inspect: format %q, want %q", rep.Format, format)
			}
			if rep.Counts.Records != cliFixtureRecords || rep.Counts.Layers != cliFixtureLayers || rep.Counts.Blobs != cliFixtureBlobs || rep.Counts.Missing != 0 {
				t.Errorf("inspect: counts %+v, want %d records, %d layers, %d blobs, none missing", rep.Counts, cliFixtureRecords, cliFixtureLayers, cliFixtureBlobs)
			}
			if rep.Config.Digest != fixtureConfig.Digest {
				t.Errorf("inspect: config %s, want the fixture's %s", rep.Config.Digest, fixtureConfig.Digest)
			}
			if format == "image-manifest" && rep.Manifest.Digest != cliFixtureManifest {
				t.Errorf("inspect: manifest %s, want BuildKit's %s", rep.Manifest.Digest, cliFixtureManifest)
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
			text := cliOK(t, bin, "inspect", loc).stdout
			for _, want := range []string{loc, format, "11 records, 8 layers, 8 distinct blobs", string(fixtureConfig.Digest)} {
				if !strings.Contains(text, want) {
					t.Errorf("inspect does not say %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "MISSING") {
				t.Errorf("inspect flags missing blobs:\n%s", text)
			}

			// Verify.
			if r := cliOK(t, bin, "verify", loc); !strings.HasPrefix(r.stdout, loc+": ok: manifest "+string(rep.Manifest.Digest)) {
				t.Errorf("verify printed %q", r.stdout)
			}

			// Back into a layout, as an image manifest: the fixture's
			// bytes again.
			out := filepath.Join(t.TempDir(), "out")
			cliOK(t, bin, "copy", "--quiet", loc, "oci:"+out)
			gotManifest, gotConfig := layoutTagged(t, out, "latest")
			if gotManifest.Digest != cliFixtureManifest {
				t.Errorf("copied back: manifest %s, want the fixture's %s", gotManifest.Digest, cliFixtureManifest)
			}
			if got := layoutBlob(t, out, gotConfig.Digest); !bytes.Equal(got, wantConfig) {
				t.Errorf("copied back: config differs from the fixture's:\n got %s\nwant %s", got, wantConfig)
			}
			cliOK(t, bin, "verify", "--quiet", "oci:"+out)

			// Again: every blob is in the repository; no blob byte is
			// sent, and the tag still names the same manifest.
			before = srv.uploaded.Load()
			posts := srv.Requests("POST upload")
			r = cliOK(t, bin, "copy", "oci:"+src, loc, "--format", format)
			if n := srv.uploaded.Load() - before; n != 0 {
				t.Errorf("second copy uploaded %d blob bytes, want 0", n)
			}
			if n := srv.Requests("POST upload") - posts; n != 0 {
				t.Errorf("second copy started %d uploads, want 0", n)
			}
			if !strings.Contains(r.stderr, ": skipped") {
				t.Errorf("second copy skipped nothing:\n%s", r.stderr)
			}
			if got := cliInspectJSON(t, bin, loc).Manifest; got.Digest != rep.Manifest.Digest {
				t.Errorf("after the second copy the tag names %s, before %s", got.Digest, rep.Manifest.Digest)
			}
		})
	}

	t.Run("missing tag", func(t *testing.T) {
		loc := "registry:" + srv.Host + "/cache/missing:v1"
		r := cliExec(t, bin, "verify", loc)
		if r.code != 1 {
			t.Fatalf("verify %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", loc, r.code, r.stdout, r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "remotecache: ") || !strings.Contains(lines[0], "not found") || !strings.Contains(lines[0], "cache/missing") {
			t.Fatalf("stderr is not one line \"remotecache: …cache/missing…not found…\":\n%s", r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("stdout %q, want nothing", r.stdout)
		}
		t.Logf("verify %s: exit 1: %s", loc, lines[0])
	})
}
