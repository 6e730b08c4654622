package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/buildcache/remotecache/ocilayout"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// binary is the remotecache command, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	// The binary must not use the AWS settings of whoever runs the tests,
	// nor wait for an instance metadata service.
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"} {
		os.Unsetenv(k)
	}
	dir, err := os.MkdirTemp("", "remotecache-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = clitest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building remotecache:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	_ = log.SetLevel("error") // as main does, for the stores tests open
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runTool runs the binary.
func runTool(t *testing.T, args ...string) clitest.Result {
	t.Helper()
	return clitest.Run(t, binary, args...)
}

// ok runs the binary and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) clitest.Result {
	t.Helper()
	return clitest.OK(t, binary, args...)
}

// says fails the test for each of wants that out, what the command
// named by what wrote, does not hold.
func says(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s does not say %q:\n%s", what, want, out)
		}
	}
}

// inspectJSON runs inspect --json on loc, which must exit 0.
func inspectJSON(t *testing.T, loc string) report {
	t.Helper()
	return inspectJSONExit(t, loc, 0)
}

// inspectJSONExit runs inspect --json on loc, which must exit with code.
func inspectJSONExit(t *testing.T, loc string, code int) report {
	t.Helper()
	var r report
	res := runTool(t, "inspect", loc, "--json")
	if res.Code != code {
		t.Fatalf("inspect --json %s: exit %d, want %d\nstderr:\n%s", loc, res.Code, code, res.Stderr)
	}
	out := res.Stdout
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	return r
}

func TestCopyEachFormat(t *testing.T) {
	src := cachetest.Fixture(t)
	before := cachetest.Snapshot(t, src)
	for _, format := range []string{"image-manifest", "oci-index", "manifest-list"} {
		t.Run(format, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "cache")
			loc := "oci:" + dst + ":v1"
			r := ok(t, "copy", "oci:"+src, loc, "--format", format)
			if !strings.HasSuffix(r.Stdout, " "+format+"\n") || !strings.HasPrefix(r.Stdout, loc+" sha256:") {
				t.Errorf("copy printed %q", r.Stdout)
			}
			if !strings.Contains(r.Stderr, "writing layer sha256:") || !strings.Contains(r.Stderr, "tagging "+loc+": done") {
				t.Errorf("no progress lines on stderr:\n%s", r.Stderr)
			}

			rep := inspectJSON(t, loc)
			if rep.Format != format {
				t.Errorf("format %q, want %q", rep.Format, format)
			}
			want := counts{Records: cachetest.FixtureRecords, Layers: cachetest.FixtureLayers, Blobs: cachetest.FixtureBlobs}
			if rep.Counts != want {
				t.Errorf("counts %+v, want %+v", rep.Counts, want)
			}
			var sum int64
			for _, b := range rep.Blobs {
				sum += b.Size
			}
			if rep.TotalBytes != sum+rep.Manifest.Size+rep.Config.Size {
				t.Errorf("total %d bytes, want %d", rep.TotalBytes, sum+rep.Manifest.Size+rep.Config.Size)
			}
			if format == "image-manifest" && rep.Manifest.Digest != cachetest.FixtureManifest {
				t.Errorf("manifest %s, want BuildKit's %s", rep.Manifest.Digest, cachetest.FixtureManifest)
			}

			text := ok(t, "inspect", loc).Stdout
			says(t, "inspect", text, loc, format, "11 records, 8 layers, 8 distinct blobs", "selector \"sha256:", "input 1 <- #")
			dot := ok(t, "inspect", "--dot", loc).Stdout
			if !strings.HasPrefix(dot, "digraph cache {") || strings.Count(dot, " -> ") < cachetest.FixtureRecords-3 {
				t.Errorf("inspect --dot:\n%s", dot)
			}

			if r := ok(t, "verify", loc); !strings.Contains(r.Stdout, ": ok: ") {
				t.Errorf("verify printed %q", r.Stdout)
			}

			// Back to an image manifest: BuildKit's bytes again.
			back := "oci:" + filepath.Join(t.TempDir(), "back")
			ok(t, "copy", "--quiet", loc, back)
			if got := inspectJSON(t, back).Manifest.Digest; got != cachetest.FixtureManifest {
				t.Errorf("copied back: manifest %s, want %s", got, cachetest.FixtureManifest)
			}
		})
	}
	cachetest.Unchanged(t, before, cachetest.Snapshot(t, src))
}

func TestCopyQuietAndFlagsFirst(t *testing.T) {
	src := cachetest.Fixture(t)
	dst := "oci:" + filepath.Join(t.TempDir(), "cache")
	r := ok(t, "copy", "--quiet", "--concurrency", "1", "--format=oci-index", "oci:"+src, dst)
	if r.Stderr != "" {
		t.Errorf("--quiet: stderr %q", r.Stderr)
	}
	if got := inspectJSON(t, dst).Format; got != "oci-index" {
		t.Errorf("format %q", got)
	}
	// Again: every blob is there already and is skipped.
	r = ok(t, "copy", "oci:"+src, dst)
	if !strings.Contains(r.Stderr, ": skipped") {
		t.Errorf("second copy skipped nothing:\n%s", r.Stderr)
	}
}

func TestInspectFlagsMissingBlobs(t *testing.T) {
	src := cachetest.Fixture(t)
	rep := inspectJSON(t, "oci:"+src)
	gone := rep.Blobs[0].Digest
	if err := os.Remove(blobPath(src, gone)); err != nil {
		t.Fatal(err)
	}
	// A damaged cache is shown, then inspect exits 1.
	rep = inspectJSONExit(t, "oci:"+src, 1)
	if rep.Counts.Missing != 1 || rep.Blobs[0].Problem != "missing" {
		t.Errorf("counts %+v, blob %+v", rep.Counts, rep.Blobs[0])
	}
	flagged := 0
	for _, rec := range rep.Records {
		for _, res := range rec.Results {
			if strings.Contains(res.Problem, string(gone)) {
				flagged++
			}
		}
	}
	if flagged == 0 {
		t.Errorf("no result flagged for the missing blob")
	}
	res := runTool(t, "inspect", "oci:"+src, "--quiet")
	clitest.FailsWith(t, res, "1 problem")
	if text := res.Stdout; !strings.Contains(text, string(gone)+"  ") || !strings.Contains(text, "MISSING") {
		t.Errorf("inspect does not flag %s:\n%s", gone, text)
	}
	res = runTool(t, "inspect", "oci:"+src, "--dot", "--quiet")
	clitest.FailsWith(t, res, "1 problem")
	if !strings.Contains(res.Stdout, "color=red") {
		t.Errorf("inspect --dot does not flag it:\n%s", res.Stdout)
	}
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func TestVerifyCorrupt(t *testing.T) {
	src := cachetest.Fixture(t)
	dst := filepath.Join(t.TempDir(), "cache")
	loc := "oci:" + dst
	ok(t, "copy", "--quiet", "oci:"+src, loc)
	rep := inspectJSON(t, loc)

	// Same size, other bytes.
	bad := rep.Blobs[1]
	p := blobPath(dst, bad.Digest)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, int(bad.Size)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTool(t, "verify", loc, "--quiet")
	clitest.FailsWith(t, r, loc+":latest: 1 problem")
	if lines := strings.Split(strings.TrimSpace(r.Stdout), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], string(bad.Digest)) || !strings.Contains(lines[0], "digest") {
		t.Errorf("verify listed:\n%s", r.Stdout)
	}

	// And one missing: two problems, one line each.
	gone := rep.Blobs[2].Digest
	if err := os.Remove(blobPath(dst, gone)); err != nil {
		t.Fatal(err)
	}
	r = runTool(t, "verify", loc, "--quiet")
	clitest.FailsWith(t, r, "2 problems")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], string(gone)) || !strings.Contains(lines[1], "not found") {
		t.Errorf("verify listed:\n%s", r.Stdout)
	}
}

// exportSmall writes a cache of two records and two blobs of its own into
// a new OCI layout, tagged latest.
func exportSmall(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "small")
	s, err := ocilayout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var layers []ocispec.Descriptor
	for _, b := range []string{"small base layer", "small app layer"} {
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(b), Size: int64(len(b))}
		if err := content.WriteBlob(ctx, s, b, strings.NewReader(b), d); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, d)
	}
	exp, err := remotecache.NewExporter(s)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	base, _, err := exp.Add(digest.FromString("small base"), nil, []remotecache.Result{{
		CreatedAt: created, Remote: &remotecache.Remote{Descriptors: layers[:1], Provider: s},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := exp.Add(digest.FromString("small run"), [][]remotecache.Link{{{Src: base, Selector: "/app"}}}, []remotecache.Result{{
		CreatedAt: created, Remote: &remotecache.Remote{Descriptors: layers, Provider: s},
	}}); err != nil {
		t.Fatal(err)
	}
	resp, err := exp.Finalize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "latest", cachetest.ManifestDesc(t, resp)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMerge(t *testing.T) {
	src, small := cachetest.Fixture(t), exportSmall(t)
	dst := "oci:" + filepath.Join(t.TempDir(), "merged") + ":all"
	r := ok(t, "merge", "oci:"+src, "oci:"+small, dst, "--format", "oci-index")
	if !strings.Contains(r.Stderr, "importing oci:"+src+":latest: done") || !strings.Contains(r.Stderr, "importing oci:"+small+":latest: done") {
		t.Errorf("progress does not show both imports:\n%s", r.Stderr)
	}
	rep := inspectJSON(t, dst)
	if want := (counts{Records: cachetest.FixtureRecords + 2, Layers: cachetest.FixtureLayers + 2, Blobs: cachetest.FixtureBlobs + 2}); rep.Counts != want || rep.Format != "oci-index" {
		t.Errorf("merged: %s %+v, want %+v", rep.Format, rep.Counts, want)
	}
	selector := false
	for _, rec := range rep.Records {
		for _, slot := range rec.Inputs {
			for _, in := range slot {
				selector = selector || in.Selector == "/app"
			}
		}
	}
	if !selector {
		t.Errorf("the small cache's link is not in the merge")
	}
	ok(t, "verify", dst)

	// A cache merged with itself is itself.
	self := "oci:" + filepath.Join(t.TempDir(), "self")
	ok(t, "merge", "--quiet", "oci:"+src, "oci:"+src, self)
	if got := inspectJSON(t, self); got.Manifest.Digest != cachetest.FixtureManifest {
		t.Errorf("fixture merged with itself: %s %+v", got.Manifest.Digest, got.Counts)
	}
}

func TestPrune(t *testing.T) {
	src := cachetest.Fixture(t)
	dir := filepath.Join(t.TempDir(), "cache")
	ok(t, "copy", "--quiet", "oci:"+src, "oci:"+dir, "--format", "oci-index")
	old := inspectJSON(t, "oci:"+dir).Manifest
	// The tag moves to an image manifest: the index is left unreachable.
	ok(t, "copy", "--quiet", "oci:"+src, "oci:"+dir)

	r := ok(t, "prune", dir, "--dry-run")
	want := fmt.Sprintf("would remove %s", old.Digest)
	if !strings.Contains(r.Stdout, want) || !strings.Contains(r.Stdout, fmt.Sprintf("would free 1 blob, %s (%d bytes)", humanBytes(old.Size), old.Size)) {
		t.Errorf("prune --dry-run printed:\n%s", r.Stdout)
	}
	if _, err := os.Stat(blobPath(dir, old.Digest)); err != nil {
		t.Errorf("dry run removed the blob: %v", err)
	}

	r = ok(t, "prune", "oci:"+dir)
	if !strings.Contains(r.Stdout, "removed "+string(old.Digest)) || !strings.Contains(r.Stdout, fmt.Sprintf("freed 1 blob, %s (%d bytes)", humanBytes(old.Size), old.Size)) {
		t.Errorf("prune printed:\n%s", r.Stdout)
	}
	if _, err := os.Stat(blobPath(dir, old.Digest)); !os.IsNotExist(err) {
		t.Errorf("prune left the blob: %v", err)
	}
	ok(t, "verify", "oci:"+dir)
	if r := ok(t, "prune", dir); !strings.Contains(r.Stdout, "freed 0 blobs, 0 B (0 bytes)") {
		t.Errorf("second prune printed:\n%s", r.Stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"help", "frobnicate"},
		{"copy", "oci:a"},
		{"copy", "oci:a", "oci:b", "oci:c"},
		{"copy", "oci:a", "oci:b", "--bogus"},
		{"copy", "oci:a", "oci:b", "--format", "zip"},
		{"copy", "oci:a", "oci:b", "--concurrency", "0"},
		{"copy", "oci:a", "oci:b", "--concurrency"},
		{"copy", "a", "oci:b"},
		{"copy", "tar:a", "oci:b"},
		{"copy", "oci:a:bad tag", "oci:b"},
		{"inspect"},
		{"inspect", "oci:a", "--json", "--dot"},
		{"verify", "oci:a", "oci:b"},
		{"verify", "--json", "oci:a"},
		{"prune"},
		{"prune", "a", "--dry-run=maybe"},
		{"merge", "oci:a"},
		{"merge", "oci:a", "registry:nohost"},
		{"copy", "oci:a", "oci:b", "--progress=bars"},
		{"copy", "oci:a", "oci:b", "--progress"},
		{"--quiet", "--progress=json", "copy", "oci:a", "oci:b"},
		{"copy", "oci:a", "oci:b", "--format", "config-only"},
		{"copy", "oci:a", "registry:localhost:1/r", "--format=config-only"},
		{"copy", "oci:a", "s3:bucket", "--format", "oci-index"},
		{"copy", "oci:a", "azblob:container/ci", "--format", "manifest-list"},
		{"copy", "azblob:", "oci:b"},
		{"merge", "oci:a", "oci:b", "s3:bucket/ci/", "--format", "image-manifest"},
		{"inspect", "s3:"},
		{"verify", "s3:bucket:a;;b"},
		{"prune", "oci:a", "--grace-period", "1h"},
		{"prune", "s3:bucket", "--grace-period", "soon"},
		{"prune", "s3:bucket", "--grace-period=-1h"},
		{"version", "extra"},
		{"completion"},
		{"completion", "tcsh"},
		{"help", "copy", "extra"},
		{"--bogus"},
		{"trim", "oci:a", "oci:b"},
		{"trim", "oci:a", "--max-age", "1h"},
		{"trim", "oci:a", "oci:b", "--max-size", "lots"},
		{"trim", "oci:a", "oci:b", "--max-size", "5XB"},
		{"trim", "oci:a", "oci:b", "--max-size", "-1"},
		{"trim", "oci:a", "oci:b", "--max-age", "0s"},
		{"trim", "oci:a", "oci:b", "--max-age", "-2h"},
		{"trim", "oci:a", "oci:b", "--max-age", "soon"},
		{"trim", "oci:a", "s3:bucket", "--max-age", "1h", "--format", "oci-index"},
		{"trim", "oci:a", "oci:b", "--max-age", "1h", "--concurrency", "0"},
		{"diff", "oci:a"},
		{"diff", "oci:a", "oci:b", "--json", "--dot"},
		{"diff", "oci:a", "oci:b", "--dry-run"},
		{"verify", "oci:a", "--dry-run"},
		{"copy", "oci:a", "oci:b", "--compression", "lz4"},
		{"copy", "oci:a", "oci:b", "--compression"},
		{"copy", "oci:a", "oci:b", "--compression-level", "3"},
		{"copy", "oci:a", "oci:b", "--force-compression"},
		{"copy", "oci:a", "oci:b", "--compression", "uncompressed", "--compression-level", "1"},
		{"copy", "oci:a", "oci:b", "--compression", "zstd", "--compression-level", "23"},
		{"copy", "oci:a", "oci:b", "--compression", "gzip", "--compression-level", "10"},
		{"copy", "oci:a", "oci:b", "--compression", "gzip", "--compression-level", "x"},
		{"merge", "oci:a", "oci:b", "oci:c", "--compression", "zstd", "--compression-level", "0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runTool(t, args...)
			if r.Code != 2 {
				t.Fatalf("exit %d, want 2\nstderr:\n%s", r.Code, r.Stderr)
			}
			if !strings.HasPrefix(r.Stderr, "remotecache: ") || !strings.Contains(r.Stderr, "\nusage: remotecache ") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
			if r.Stdout != "" {
				t.Errorf("stdout: %q", r.Stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "prune"}, {"prune", "-h"}, {"copy", "oci:a", "--help"}} {
		r := ok(t, args...)
		if !strings.HasPrefix(r.Stdout, "usage: remotecache ") || r.Stderr != "" {
			t.Errorf("%v: stdout %q, stderr %q", args, r.Stdout, r.Stderr)
		}
	}
	if r := ok(t, "help"); !strings.Contains(r.Stdout, "\n  merge ") {
		t.Errorf("help does not list merge:\n%s", r.Stdout)
	}
}

func TestFailures(t *testing.T) {
	src := cachetest.Fixture(t)
	tmp := t.TempDir()
	nowhere := filepath.Join(tmp, "nowhere")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "oci:" + nowhere}, "oci layout " + nowhere + ": no oci-layout: not found"},
		{[]string{"verify", "oci:" + src + ":v9"}, `tag "v9": not found`},
		{[]string{"copy", "oci:" + nowhere, "oci:" + filepath.Join(tmp, "dst")}, "no oci-layout"},
		{[]string{"copy", "oci:" + src + ":v9", "oci:" + filepath.Join(tmp, "dst")}, `tag "v9": not found`},
		{[]string{"merge", "oci:" + src, "oci:" + nowhere, "oci:" + filepath.Join(tmp, "dst")}, "no oci-layout"},
		{[]string{"prune", nowhere}, "not an OCI image layout"},
		{[]string{"copy", "oci:" + src, "registry:127.0.0.1:1/cache"}, "connection refused"},
		// No endpoint, no region: nowhere to send a request.
		{[]string{"inspect", "s3:bucket/ci/:main"}, "s3 bucket bucket: no region: set AWS_REGION"},
		{[]string{"copy", "oci:" + src, "s3:bucket"}, "no region"},
		{[]string{"inspect", "azblob:cache/ci:main"}, "azblob container cache: no storage account: set $AZURE_STORAGE_CONNECTION_STRING"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			clitest.FailsWith(t, runTool(t, append(tc.args, "--quiet")...), tc.want)
		})
	}
	// A cache whose layer blobs are all gone: no record has a result
	// left, so there is nothing to export.
	empty := cachetest.Fixture(t)
	for _, b := range inspectJSON(t, "oci:"+empty).Blobs {
		if err := os.Remove(blobPath(empty, b.Digest)); err != nil {
			t.Fatal(err)
		}
	}
	clitest.FailsWith(t, runTool(t, "copy", "--quiet", "oci:"+empty, "oci:"+filepath.Join(tmp, "empty")), "nothing to write")

	// Nothing was made where a source or destination was missing.
	for _, p := range []string{nowhere, filepath.Join(tmp, "dst")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v", p, err)
		}
	}
}
