package azbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// The command line tool end to end against Azurite: azblob: locations in
// copy, inspect, verify, merge, diff, trim, verify --repair and prune, in
// either direction and with oci: locations, configured as a user
// configures it, by $AZURE_STORAGE_CONNECTION_STRING.

// cli is the command with the environment that points it at one Azurite,
// through the test's proxy.
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
	return &cli{bin: bin, env: []string{"AZURE_STORAGE_CONNECTION_STRING=" + connectionString(e.proxy.URL)}}
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

// TestCLI copies BuildKit's fixture into a container and back, checks it
// there, merges it with a layout, compares, trims and repairs it.
func TestCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := newCLI(t, e)
	fixture := cachetest.Fixture(t)
	fixtureManifest, fixtureConfig := cachetest.LayoutTagged(t, fixture, "latest")
	// A prefix is a path, as BuildKit's azblob cache joins it: "ci" is
	// the directory ci/.
	loc := "azblob:" + e.container + "/ci:main"

	r := c.ok(t, "copy", "oci:"+fixture, loc)
	if !strings.HasPrefix(r.Stdout, loc+" sha256:") || !strings.HasSuffix(r.Stdout, " config-only\n") {
		t.Errorf("copy printed %q", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "writing layer sha256:") || !strings.Contains(r.Stderr, "tagging "+loc+": done") {
		t.Errorf("no progress lines on stderr:\n%s", r.Stderr)
	}
	config := e.blob(t, "ci/manifests/main")
	if got := strings.Fields(r.Stdout)[1]; got != digest.FromBytes(config).String() {
		t.Errorf("copy printed %s, the config at ci/manifests/main is %s", got, digest.FromBytes(config))
	}
	for _, b := range objstoretest.ConfigBlobs(t, config) {
		e.blob(t, "ci/blobs/"+b.String())
	}

	rep := c.inspect(t, loc)
	if rep.Format != "config-only" || rep.Counts.Records != cachetest.FixtureRecords || rep.Counts.Blobs != cachetest.FixtureBlobs || rep.Counts.Missing != 0 {
		t.Errorf("inspect %s: %+v", loc, rep)
	}
	if r := c.ok(t, "verify", loc); !strings.HasPrefix(r.Stdout, loc+": ok: config "+string(rep.Config.Digest)+" and 8 layer blobs") {
		t.Errorf("verify printed %q", r.Stdout)
	}

	// Back into a layout, as an image manifest: the fixture's bytes.
	out := filepath.Join(t.TempDir(), "out")
	c.ok(t, "copy", "--quiet", loc, "oci:"+out)
	gotManifest, gotConfig := cachetest.LayoutTagged(t, out, "latest")
	if gotManifest.Digest != fixtureManifest.Digest {
		t.Errorf("copied back: manifest %s, want the fixture's %s", gotManifest.Digest, fixtureManifest.Digest)
	}
	if !bytes.Equal(cachetest.LayoutBlob(t, out, gotConfig.Digest), cachetest.LayoutBlob(t, fixture, fixtureConfig.Digest)) {
		t.Errorf("copied back: the config is not the fixture's")
	}

	// A container to itself under two names; a merge with a layout; a
	// diff with the fixture.
	two := "azblob:" + e.container + ":a;b"
	c.ok(t, "copy", "--quiet", loc, two)
	if a, b := e.blob(t, "manifests/a"), e.blob(t, "manifests/b"); !bytes.Equal(a, b) || !bytes.Equal(a, config) {
		t.Errorf("names a and b: configs differ from each other or from the source's")
	}
	merged := "azblob:" + e.container + "/merged"
	if r := c.ok(t, "merge", "--quiet", loc, "oci:"+out, merged); !strings.HasPrefix(r.Stdout, merged+":buildkit sha256:") {
		t.Errorf("merge printed %q", r.Stdout)
	}
	if got := c.inspect(t, merged); got.Counts.Records != cachetest.FixtureRecords || got.Counts.Missing != 0 {
		t.Errorf("merged: %+v", got.Counts)
	}
	if r := c.ok(t, "diff", "oci:"+fixture, loc); !strings.Contains(r.Stdout, "A and B hold the same cache") {
		t.Errorf("diff of the fixture and its copy in the container:\n%s", r.Stdout)
	}

	// Trim into another directory, then lose a blob there and repair.
	trimmed := "azblob:" + e.container + "/trimmed"
	if r := c.ok(t, "trim", "--quiet", loc, trimmed, "--max-age", "876000h"); !strings.Contains(r.Stdout, "nothing to drop") || !strings.HasSuffix(r.Stdout, " config-only\n") {
		t.Errorf("trim into a container:\n%s", r.Stdout)
	}
	lost := "sha256:258f55c32c55f89557d716faf546897e558dcb4c69dd6af1c6b5a270f61a16fc"
	if _, err := e.admin.NewBlobClient("trimmed/blobs/"+lost).Delete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	clitest.FailsWith(t, c.run(t, "verify", "--quiet", trimmed), "1 problem")
	r = c.ok(t, "verify", "--repair", trimmed)
	if !strings.Contains(r.Stdout, "1 blob missing\n  "+lost) || !strings.Contains(r.Stdout, "dropped 2 results") || !strings.Contains(r.Stdout, trimmed+":buildkit: ok: config ") {
		t.Errorf("verify --repair of a container:\n%s", r.Stdout)
	}

	clitest.FailsWith(t, c.run(t, "inspect", "--quiet", "azblob:"+e.container+"/ci:nope"), "ci/manifests/nope")
	if r := c.run(t, "copy", "oci:"+fixture, loc, "--format", "oci-index"); r.Code != 2 || !strings.Contains(r.Stderr, "takes only the config-only form") {
		t.Errorf("copy --format oci-index into azblob: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := c.run(t, "inspect", "--quiet", loc); r.Code != 0 {
		t.Errorf("inspect after the failures: exit %d", r.Code)
	}
	noAccount := clitest.RunEnv(t, c.bin, []string{"AZURE_STORAGE_CONNECTION_STRING="}, "inspect", "--quiet", loc)
	clitest.FailsWith(t, noAccount, "no storage account")
}

// prune on an azblob: location removes the blobs no config names, but not
// those younger than the grace period; --dry-run removes nothing.
func TestCLIPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := newCLI(t, e)
	loc := "azblob:" + e.container + "/ci"
	c.ok(t, "copy", "--quiet", "oci:"+cachetest.Fixture(t), loc)
	old, young := "ci/blobs/"+digest.FromString("an old orphan").String(), "ci/blobs/"+digest.FromString("a young orphan").String()
	e.upload(t, old, "an old orphan")
	e.upload(t, young, "a young orphan")
	// Every blob old but the young orphan.
	for _, n := range e.names(t) {
		if strings.HasPrefix(n, "ci/blobs/") && n != young {
			e.proxy.age(n, 2*time.Hour)
		}
	}
	oldDigest := strings.TrimPrefix(old, "ci/blobs/")

	r := c.ok(t, "prune", loc, "--dry-run")
	if !strings.Contains(r.Stdout, "would remove "+oldDigest+"  13 B\n") || strings.Contains(r.Stdout, strings.TrimPrefix(young, "ci/blobs/")) ||
		!strings.Contains(r.Stdout, loc+": would free 1 blob, 13 B (13 bytes); kept 9 blobs") {
		t.Errorf("prune --dry-run printed:\n%s", r.Stdout)
	}
	if r := c.ok(t, "prune", loc, "--dry-run", "--grace-period", "3h"); !strings.Contains(r.Stdout, "would free 0 blobs") {
		t.Errorf("prune --dry-run --grace-period 3h printed:\n%s", r.Stdout)
	}
	before := e.proxy.Count("DELETE")
	c.ok(t, "prune", loc, "--dry-run", "--grace-period=0s")
	if n := e.proxy.Count("DELETE") - before; n != 0 {
		t.Errorf("a dry run sent %d deletes", n)
	}

	r = c.ok(t, "prune", loc)
	if !strings.Contains(r.Stdout, "removed "+oldDigest) || !strings.Contains(r.Stdout, "freed 1 blob, 13 B (13 bytes)") {
		t.Errorf("prune printed:\n%s", r.Stdout)
	}
	names := strings.Join(e.names(t), "\n")
	if strings.Contains(names, old) || !strings.Contains(names, young) {
		t.Errorf("after prune the container has:\n%s", names)
	}
	c.ok(t, "verify", "--quiet", loc)
}
