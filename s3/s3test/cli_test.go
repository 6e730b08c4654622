package s3test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// The command line tool end to end against a Versity gateway: s3:
// locations in copy, inspect, verify, merge and prune, in either
// direction and with oci: locations, configured as a user configures it,
// by the AWS SDK's environment.

// cli is the command with the environment that points it at one gateway.
type cli struct {
	bin string
	env []string
}

func newCLI(t *testing.T, e *env) *cli {
	t.Helper()
	bin, err := clitest.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &cli{bin: bin, env: []string{
		"AWS_ENDPOINT_URL=" + e.proxy.URL,
		"AWS_REGION=" + region,
		"AWS_ACCESS_KEY_ID=" + accessKey,
		"AWS_SECRET_ACCESS_KEY=" + secretKey,
	}}
}

func (c *cli) run(t *testing.T, args ...string) clitest.Result {
	t.Helper()
	return clitest.RunEnv(t, c.bin, c.env, args...)
}

func (c *cli) ok(t *testing.T, args ...string) clitest.Result {
	t.Helper()
	return clitest.OKEnv(t, c.bin, c.env, args...)
}

// cliReport is the part of `inspect --json` the tests read.
type cliReport struct {
	Location string             `json:"location"`
	Format   string             `json:"format"`
	Manifest ocispec.Descriptor `json:"manifest"`
	Config   ocispec.Descriptor `json:"config"`
	Counts   struct {
		Records, Layers, Blobs, Missing int
	} `json:"counts"`
}

func (c *cli) inspect(t *testing.T, loc string) cliReport {
	t.Helper()
	out := c.ok(t, "inspect", loc, "--json").Stdout
	var r cliReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("inspect --json %s: %v\n%s", loc, err, out)
	}
	return r
}

// cliResult is the part of `copy --json` the tests read.
type cliResult struct {
	Destination  string             `json:"destination"`
	Format       string             `json:"format"`
	Manifest     ocispec.Descriptor `json:"manifest"`
	Blobs        int                `json:"blobs"`
	Written      int                `json:"written"`
	Skipped      int                `json:"skipped"`
	BytesWritten int64              `json:"bytesWritten"`
	BytesSkipped int64              `json:"bytesSkipped"`
}

func (c *cli) copyJSON(t *testing.T, args ...string) cliResult {
	t.Helper()
	out := c.ok(t, append(args, "--json", "--quiet")...).Stdout
	var r cliResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v --json: %v\n%s", args, err, out)
	}
	return r
}

// TestCLI copies BuildKit's fixture into a bucket and back, checks it
// there with inspect and verify, merges it with another cache, and prunes.
func TestCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := newCLI(t, e)
	fixture := cachetest.Fixture(t)
	fixtureManifest, fixtureConfig := cachetest.LayoutTagged(t, fixture, "latest")
	loc := "s3:" + e.bucket + "/ci/:main"

	// Into the bucket: the config-only form, the only one it takes.
	r := c.ok(t, "copy", "oci:"+fixture, loc)
	if !strings.HasPrefix(r.Stdout, loc+" sha256:") || !strings.HasSuffix(r.Stdout, " config-only\n") {
		t.Errorf("copy printed %q", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "writing layer sha256:") || !strings.Contains(r.Stderr, "tagging "+loc+": done") {
		t.Errorf("no progress lines on stderr:\n%s", r.Stderr)
	}
	config := e.object(t, "ci/manifests/main")
	if got := strings.Fields(r.Stdout)[1]; got != digest.FromBytes(config).String() {
		t.Errorf("copy printed %s, the config under ci/manifests/main is %s", got, digest.FromBytes(config))
	}
	for _, b := range objstoretest.ConfigBlobs(t, config) {
		e.object(t, "ci/blobs/"+b.String())
	}

	rep := c.inspect(t, loc)
	if rep.Format != "config-only" || rep.Counts.Records != cachetest.FixtureRecords || rep.Counts.Layers != cachetest.FixtureLayers ||
		rep.Counts.Blobs != cachetest.FixtureBlobs || rep.Counts.Missing != 0 || rep.Manifest.Digest != rep.Config.Digest {
		t.Errorf("inspect %s: %+v", loc, rep)
	}
	if text := c.ok(t, "inspect", loc).Stdout; !strings.Contains(text, "config-only (no manifest)") || !strings.Contains(text, "11 records, 8 layers, 8 distinct blobs") {
		t.Errorf("inspect %s:\n%s", loc, text)
	}
	if r := c.ok(t, "verify", loc); !strings.HasPrefix(r.Stdout, loc+": ok: config "+string(rep.Config.Digest)+" and 8 layer blobs") {
		t.Errorf("verify printed %q", r.Stdout)
	}

	// Back into a layout, as an image manifest by default: the fixture's
	// bytes again.
	out := filepath.Join(t.TempDir(), "out")
	c.ok(t, "copy", "--quiet", loc, "oci:"+out)
	gotManifest, gotConfig := cachetest.LayoutTagged(t, out, "latest")
	if gotManifest.Digest != fixtureManifest.Digest || gotManifest.Digest != cachetest.FixtureManifest {
		t.Errorf("copied back: manifest %s, want the fixture's %s", gotManifest.Digest, fixtureManifest.Digest)
	}
	if !bytes.Equal(cachetest.LayoutBlob(t, out, gotConfig.Digest), cachetest.LayoutBlob(t, fixture, fixtureConfig.Digest)) {
		t.Errorf("copied back: the config is not the fixture's")
	}

	// Again: every blob is there and is not sent; the config is written
	// again, since writing it is what moves the name.
	before := e.proxy.BlobUploaded.Load()
	again := c.copyJSON(t, "copy", "oci:"+fixture, loc)
	if again.Format != "config-only" || again.Blobs != cachetest.FixtureBlobs+1 || again.Skipped != cachetest.FixtureBlobs || again.Written != 1 {
		t.Errorf("second copy: %+v", again)
	}
	if n := e.proxy.BlobUploaded.Load() - before; n != 0 {
		t.Errorf("second copy uploaded %d blob bytes", n)
	}

	// A bucket to a bucket, under two names, and a merge of a bucket and
	// a layout into a bucket.
	two := "s3:" + e.bucket + ":a;b"
	c.ok(t, "copy", "--quiet", loc, two)
	if a, b := e.object(t, "manifests/a"), e.object(t, "manifests/b"); !bytes.Equal(a, b) || !bytes.Equal(a, config) {
		t.Errorf("names a and b: configs differ from each other or from the source's")
	}
	small := filepath.Join(t.TempDir(), "small")
	c.ok(t, "copy", "--quiet", "oci:"+fixture, "oci:"+small, "--format", "oci-index")
	merged := "s3:" + e.bucket + "/merged/"
	res := c.copyJSON(t, "merge", loc, "oci:"+small, merged)
	if res.Destination != merged+":buildkit" || res.Format != "config-only" {
		t.Errorf("merge: %+v", res)
	}
	if got := c.inspect(t, merged); got.Counts.Records != cachetest.FixtureRecords || got.Counts.Missing != 0 {
		t.Errorf("merged: %+v", got.Counts)
	}
	c.ok(t, "verify", "--quiet", merged)

	// The lifecycle commands on a bucket: the copy in the bucket is the
	// fixture's cache; a trim that keeps everything keeps the form; a
	// lost blob is repaired in place.
	if r := c.ok(t, "diff", "oci:"+fixture, loc); !strings.Contains(r.Stdout, "A and B hold the same cache") {
		t.Errorf("diff of the fixture and its copy in the bucket:\n%s", r.Stdout)
	}
	trimmed := "s3:" + e.bucket + "/trimmed/"
	if r := c.ok(t, "trim", "--quiet", loc, trimmed, "--max-age", "876000h"); !strings.Contains(r.Stdout, "nothing to drop") || !strings.HasSuffix(r.Stdout, " config-only\n") {
		t.Errorf("trim into a bucket:\n%s", r.Stdout)
	}
	lost := "sha256:258f55c32c55f89557d716faf546897e558dcb4c69dd6af1c6b5a270f61a16fc"
	if _, err := e.admin.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: ptr("trimmed/blobs/" + lost)}); err != nil {
		t.Fatal(err)
	}
	clitest.FailsWith(t, c.run(t, "verify", "--quiet", trimmed), "1 problem")
	r = c.ok(t, "verify", "--repair", trimmed)
	if !strings.Contains(r.Stdout, "1 blob missing\n  "+lost) || !strings.Contains(r.Stdout, "dropped 2 results") || !strings.Contains(r.Stdout, trimmed+":buildkit: ok: config ") {
		t.Errorf("verify --repair of a bucket:\n%s", r.Stdout)
	}

	// Failures: a name that is not there, a bucket that is not.
	clitest.FailsWith(t, c.run(t, "inspect", "--quiet", "s3:"+e.bucket+"/ci/:nope"), "ci/manifests/nope", "does not exist")
	clitest.FailsWith(t, c.run(t, "copy", "--quiet", "s3:no-such-bucket", "oci:"+filepath.Join(t.TempDir(), "x")), "no-such-bucket")
	if r := c.run(t, "copy", "oci:"+fixture, loc, "--format", "image-manifest"); r.Code != 2 || !strings.Contains(r.Stderr, "takes only the config-only form") {
		t.Errorf("copy --format image-manifest into s3: exit %d\n%s", r.Code, r.Stderr)
	}
}

// prune on an s3: location removes the blobs no config names, but not
// those younger than the grace period; --dry-run removes nothing.
func TestCLIPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := newCLI(t, e)
	ctx := context.Background()
	c.ok(t, "copy", "--quiet", "oci:"+cachetest.Fixture(t), "s3:"+e.bucket+"/ci/")
	// Two blobs no config names: one old, one just written.
	put := func(content string) string {
		key := "ci/blobs/" + digest.FromString(content).String()
		if _, err := e.admin.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: strings.NewReader(content)}); err != nil {
			t.Fatal(err)
		}
		return key
	}
	old, young := put("an old orphan"), put("a young orphan")
	e.age(t, old, 2*time.Hour)
	oldDigest := strings.TrimPrefix(old, "ci/blobs/")
	loc := "s3:" + e.bucket + "/ci/"

	r := c.ok(t, "prune", loc, "--dry-run")
	if !strings.Contains(r.Stdout, "would remove "+oldDigest+"  13 B\n") || strings.Contains(r.Stdout, strings.TrimPrefix(young, "ci/blobs/")) ||
		!strings.Contains(r.Stdout, "would free 1 blob, 13 B (13 bytes); kept 9 blobs") {
		t.Errorf("prune --dry-run printed:\n%s", r.Stdout)
	}
	if r := c.ok(t, "prune", loc, "--dry-run", "--grace-period", "3h"); !strings.Contains(r.Stdout, "would free 0 blobs") {
		t.Errorf("prune --dry-run --grace-period 3h printed:\n%s", r.Stdout)
	}
	before := e.proxy.Count("DELETE")
	c.ok(t, "prune", loc, "--dry-run", "--grace-period=0s")
	if n := e.proxy.Count("DELETE") - before; n != 0 {
		t.Errorf("a dry run sent %d DELETEs", n)
	}
	e.object(t, old)

	r = c.ok(t, "prune", loc)
	if !strings.Contains(r.Stdout, "removed "+oldDigest) || !strings.Contains(r.Stdout, "freed 1 blob, 13 B (13 bytes)") {
		t.Errorf("prune printed:\n%s", r.Stdout)
	}
	keys := strings.Join(e.keys(t), "\n")
	if strings.Contains(keys, old) || !strings.Contains(keys, young) {
		t.Errorf("after prune the bucket has:\n%s", keys)
	}
	c.ok(t, "verify", "--quiet", loc)
	if r := c.ok(t, "prune", loc, "--grace-period", "0s"); !strings.Contains(r.Stdout, "removed "+strings.TrimPrefix(young, "ci/blobs/")) {
		t.Errorf("prune --grace-period 0s printed:\n%s", r.Stdout)
	}
}

func ptr[T any](v T) *T { return &v }
