package objstoretest

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
)

// CLI is the command line tool, built for the test, with the environment
// that points it at one server.
type CLI struct {
	// Bin is the binary.
	Bin string
	// Env is the environment it runs with, on top of the test's.
	Env []string
}

// NewCLI builds the command line tool, to run with env.
func NewCLI(t testing.TB, env ...string) *CLI {
	t.Helper()
	bin, err := clitest.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &CLI{Bin: bin, Env: env}
}

// Run runs the tool with args.
func (c *CLI) Run(t testing.TB, args ...string) clitest.Result {
	t.Helper()
	return clitest.RunEnv(t, c.Bin, c.Env, args...)
}

// OK runs the tool with args and fails the test unless it exits 0.
func (c *CLI) OK(t testing.TB, args ...string) clitest.Result {
	t.Helper()
	return clitest.OKEnv(t, c.Bin, c.Env, args...)
}

// Inspect runs `inspect --json` on loc, which must exit 0.
func (c *CLI) Inspect(t testing.TB, loc string) clitest.Report {
	t.Helper()
	return clitest.Inspect(t, c.Bin, c.Env, loc)
}

// CLIResult is the part of `copy --json` the tests read.
type CLIResult struct {
	Format  string `json:"format"`
	Blobs   int    `json:"blobs"`
	Written int    `json:"written"`
	Skipped int    `json:"skipped"`
}

// CopyJSON runs a copy (or merge) with args, --json and --quiet, which
// must exit 0.
func (c *CLI) CopyJSON(t testing.TB, args ...string) CLIResult {
	t.Helper()
	out := c.OK(t, append(args, "--json", "--quiet")...).Stdout
	var r CLIResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v --json: %v\n%s", args, err, out)
	}
	return r
}

// CLIStore is a bucket or container as the command line tests reach it.
type CLIStore struct {
	// Env is its server side; the tool goes through Env's proxy.
	Env Env
	// Location returns the location of the cache under directory dir ("":
	// the root) with the names names ("": the default, "buildkit"), as
	// the user writes it: "s3:BUCKET/dir/:names", "azblob:CONTAINER/dir:names".
	Location func(dir, names string) string
	// What is what the store holds caches in, for the messages: "bucket",
	// "container".
	What string
}

// RunCLI copies BuildKit's fixture into the store with c and back, checks
// it there with inspect and verify, copies it again, under two names,
// merges it with a layout, compares it with the fixture, trims it, loses
// a blob and repairs it, and checks that the store refuses other manifest
// forms.
func RunCLI(t *testing.T, c *CLI, s CLIStore) {
	e := s.Env
	fixture := cachetest.Fixture(t)
	fixtureManifest, fixtureConfig := cachetest.LayoutTagged(t, fixture, "latest")
	loc := s.Location("ci", "main")

	// Into the store: the config-only form, the only one it takes.
	r := c.OK(t, "copy", "oci:"+fixture, loc)
	if !strings.HasPrefix(r.Stdout, loc+" sha256:") || !strings.HasSuffix(r.Stdout, " config-only\n") {
		t.Errorf("copy printed %q", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "writing layer sha256:") || !strings.Contains(r.Stderr, "tagging "+loc+": done") {
		t.Errorf("no progress lines on stderr:\n%s", r.Stderr)
	}
	config := e.Object(t, "ci/manifests/main")
	if got := strings.Fields(r.Stdout)[1]; got != digest.FromBytes(config).String() {
		t.Errorf("copy printed %s, the config under ci/manifests/main is %s", got, digest.FromBytes(config))
	}
	for _, b := range ConfigBlobs(t, config) {
		e.Object(t, "ci/blobs/"+b.String())
	}

	rep := c.Inspect(t, loc)
	if rep.Format != "config-only" || rep.Counts.Records != cachetest.FixtureRecords || rep.Counts.Layers != cachetest.FixtureLayers ||
		rep.Counts.Blobs != cachetest.FixtureBlobs || rep.Counts.Missing != 0 || rep.Manifest.Digest != rep.Config.Digest {
		t.Errorf("inspect %s: %+v", loc, rep)
	}
	if text := c.OK(t, "inspect", loc).Stdout; !strings.Contains(text, "config-only (no manifest)") || !strings.Contains(text, "11 records, 8 layers, 8 distinct blobs") {
		t.Errorf("inspect %s:\n%s", loc, text)
	}
	if r := c.OK(t, "verify", loc); !strings.HasPrefix(r.Stdout, loc+": ok: config "+string(rep.Config.Digest)+" and 8 layer blobs") {
		t.Errorf("verify printed %q", r.Stdout)
	}

	// Back into a layout, as an image manifest by default: the fixture's
	// bytes again.
	out := filepath.Join(t.TempDir(), "out")
	c.OK(t, "copy", "--quiet", loc, "oci:"+out)
	gotManifest, gotConfig := cachetest.LayoutTagged(t, out, "latest")
	if gotManifest.Digest != fixtureManifest.Digest || gotManifest.Digest != cachetest.FixtureManifest {
		t.Errorf("copied back: manifest %s, want the fixture's %s", gotManifest.Digest, fixtureManifest.Digest)
	}
	if !bytes.Equal(cachetest.LayoutBlob(t, out, gotConfig.Digest), cachetest.LayoutBlob(t, fixture, fixtureConfig.Digest)) {
		t.Errorf("copied back: the config is not the fixture's")
	}

	// Again: every blob is there and is not sent; the config is written
	// again, since writing it is what moves the name.
	before := e.Proxy().BlobUploaded.Load()
	again := c.CopyJSON(t, "copy", "oci:"+fixture, loc)
	if again.Format != "config-only" || again.Blobs != cachetest.FixtureBlobs+1 || again.Skipped != cachetest.FixtureBlobs || again.Written != 1 {
		t.Errorf("second copy: %+v", again)
	}
	if n := e.Proxy().BlobUploaded.Load() - before; n != 0 {
		t.Errorf("second copy uploaded %d blob bytes", n)
	}

	// The store to itself under two names, and a merge of the store and
	// a layout into the store.
	c.OK(t, "copy", "--quiet", loc, s.Location("", "a;b"))
	if a, b := e.Object(t, "manifests/a"), e.Object(t, "manifests/b"); !bytes.Equal(a, b) || !bytes.Equal(a, config) {
		t.Errorf("names a and b: configs differ from each other or from the source's")
	}
	small := filepath.Join(t.TempDir(), "small")
	c.OK(t, "copy", "--quiet", "oci:"+fixture, "oci:"+small, "--format", "oci-index")
	merged := s.Location("merged", "")
	if r := c.OK(t, "merge", "--quiet", loc, "oci:"+small, merged); !strings.HasPrefix(r.Stdout, merged+":buildkit sha256:") || !strings.HasSuffix(r.Stdout, " config-only\n") {
		t.Errorf("merge printed %q", r.Stdout)
	}
	if got := c.Inspect(t, merged); got.Counts.Records != cachetest.FixtureRecords || got.Counts.Missing != 0 {
		t.Errorf("merged: %+v", got.Counts)
	}
	c.OK(t, "verify", "--quiet", merged)

	// The lifecycle commands on the store: the copy there is the
	// fixture's cache; a trim that keeps everything keeps the form; a
	// lost blob is repaired in place.
	if r := c.OK(t, "diff", "oci:"+fixture, loc); !strings.Contains(r.Stdout, "A and B hold the same cache") {
		t.Errorf("diff of the fixture and its copy in the %s:\n%s", s.What, r.Stdout)
	}
	trimmed := s.Location("trimmed", "")
	if r := c.OK(t, "trim", "--quiet", loc, trimmed, "--max-age", "876000h"); !strings.Contains(r.Stdout, "nothing to drop") || !strings.HasSuffix(r.Stdout, " config-only\n") {
		t.Errorf("trim into a %s:\n%s", s.What, r.Stdout)
	}
	lost := "sha256:258f55c32c55f89557d716faf546897e558dcb4c69dd6af1c6b5a270f61a16fc"
	e.Delete(t, "trimmed/blobs/"+lost)
	clitest.FailsWith(t, c.Run(t, "verify", "--quiet", trimmed), "1 problem")
	r = c.OK(t, "verify", "--repair", trimmed)
	if !strings.Contains(r.Stdout, "1 blob missing\n  "+lost) || !strings.Contains(r.Stdout, "dropped 2 results") || !strings.Contains(r.Stdout, trimmed+":buildkit: ok: config ") {
		t.Errorf("verify --repair of a %s:\n%s", s.What, r.Stdout)
	}

	// Failures: a name that is not there, a form the store does not take.
	clitest.FailsWith(t, c.Run(t, "inspect", "--quiet", s.Location("ci", "nope")), "ci/manifests/nope")
	for _, format := range []string{"image-manifest", "oci-index"} {
		if r := c.Run(t, "copy", "oci:"+fixture, loc, "--format", format); r.Code != 2 || !strings.Contains(r.Stderr, "takes only the config-only form") {
			t.Errorf("copy --format %s into %s: exit %d\n%s", format, loc, r.Code, r.Stderr)
		}
	}
}

// RunCLIPrune checks prune on the store: it removes the blobs no config
// names, but not those younger than the grace period; --dry-run removes
// nothing.
func RunCLIPrune(t *testing.T, c *CLI, s CLIStore) {
	e := s.Env
	loc := s.Location("ci", "")
	c.OK(t, "copy", "--quiet", "oci:"+cachetest.Fixture(t), loc)
	// Two blobs no config names: one old, one just written.
	oldDigest, youngDigest := digest.FromString("an old orphan").String(), digest.FromString("a young orphan").String()
	old, young := "ci/blobs/"+oldDigest, "ci/blobs/"+youngDigest
	e.Put(t, old, "an old orphan")
	e.Put(t, young, "a young orphan")
	// Every blob old but the young orphan.
	for _, k := range e.Keys(t) {
		if strings.HasPrefix(k, "ci/blobs/") && k != young {
			e.Age(t, k, 2*time.Hour)
		}
	}

	// By default a blob younger than the touch refresh age (24h) stays:
	// an export in progress may have found it and reuse it unrefreshed.
	if r := c.OK(t, "prune", loc, "--dry-run"); !strings.Contains(r.Stdout, "would free 0 blobs") {
		t.Errorf("prune --dry-run printed:\n%s", r.Stdout)
	}
	r := c.OK(t, "prune", loc, "--dry-run", "--grace-period", "1h")
	if !strings.Contains(r.Stdout, "would remove "+oldDigest+"  13 B\n") || strings.Contains(r.Stdout, youngDigest) ||
		!strings.Contains(r.Stdout, loc+": would free 1 blob, 13 B (13 bytes); kept 9 blobs") {
		t.Errorf("prune --dry-run --grace-period 1h printed:\n%s", r.Stdout)
	}
	if r := c.OK(t, "prune", loc, "--dry-run", "--grace-period", "3h"); !strings.Contains(r.Stdout, "would free 0 blobs") {
		t.Errorf("prune --dry-run --grace-period 3h printed:\n%s", r.Stdout)
	}
	before := e.Proxy().Count("DELETE")
	c.OK(t, "prune", loc, "--dry-run", "--grace-period=0s")
	if n := e.Proxy().Count("DELETE") - before; n != 0 {
		t.Errorf("a dry run sent %d deletes", n)
	}
	e.Object(t, old)

	r = c.OK(t, "prune", loc, "--grace-period", "1h")
	if !strings.Contains(r.Stdout, "removed "+oldDigest) || !strings.Contains(r.Stdout, "freed 1 blob, 13 B (13 bytes)") {
		t.Errorf("prune printed:\n%s", r.Stdout)
	}
	keys := strings.Join(e.Keys(t), "\n")
	if strings.Contains(keys, old) || !strings.Contains(keys, young) {
		t.Errorf("after prune the %s has:\n%s", s.What, keys)
	}
	c.OK(t, "verify", "--quiet", loc)
	if r := c.OK(t, "prune", loc, "--grace-period", "0s"); !strings.Contains(r.Stdout, "removed "+youngDigest) {
		t.Errorf("prune --grace-period 0s printed:\n%s", r.Stdout)
	}
}
