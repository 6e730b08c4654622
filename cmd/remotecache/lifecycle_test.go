package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
	digest "github.com/opencontainers/go-digest"
)

// diffPair copies testdata/diff-pair's two caches (A, built with
// VERSION=1, and B, with VERSION=2) into directories of t.
func diffPair(t *testing.T) (a, b string) {
	t.Helper()
	root, err := cachetest.Root()
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, side := range []string{"A", "B"} {
		dir := filepath.Join(t.TempDir(), side)
		if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "testdata", "diff-pair", side))); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	return dirs[0], dirs[1]
}

// trimOutput is the part of trim --json the tests read: the report and
// the export's result.
type trimOutput struct {
	Source      string                  `json:"source"`
	Destination string                  `json:"destination"`
	DryRun      bool                    `json:"dryRun"`
	Before      remotecache.CacheCounts `json:"before"`
	After       remotecache.CacheCounts `json:"after"`
	Dropped     []struct {
		Record remotecache.RecordRef `json:"record"`
		Reason string                `json:"reason"`
		Freed  int64                 `json:"freed"`
	} `json:"dropped"`
	DroppedRecords []remotecache.RecordRef `json:"droppedRecords"`
	DroppedBlobs   []remotecache.BlobSize  `json:"droppedBlobs"`
	Format         string                  `json:"format"`
	Manifest       json.RawMessage         `json:"manifest"`
	Blobs          int                     `json:"blobs"`
	Written        int                     `json:"written"`
}

func trimJSON(t *testing.T, args ...string) trimOutput {
	t.Helper()
	r := ok(t, append(append([]string{"trim"}, args...), "--json", "--quiet")...)
	var out trimOutput
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("trim --json: %v\n%s", err, r.Stdout)
	}
	return out
}

// The two builds of diff-pair merged: 13 results, the newer build's
// interleaved in time with the older one's, sharing 2 MiB of base layers.
func mergedPair(t *testing.T) string {
	t.Helper()
	a, b := diffPair(t)
	dir := filepath.Join(t.TempDir(), "merged")
	ok(t, "merge", "--quiet", "oci:"+a, "oci:"+b, "oci:"+dir)
	return dir
}

func TestTrim(t *testing.T) {
	merged := mergedPair(t)
	src := "oci:" + merged
	before := cachetest.Snapshot(t, merged)

	// A dry run says what would go and writes nothing.
	dry := filepath.Join(t.TempDir(), "dry")
	res := trimJSON(t, src, "oci:"+dry, "--max-size", "2129500", "--dry-run")
	if !res.DryRun || res.Before.Results != 13 || res.After.Results != 4 || len(res.Dropped) != 9 || res.After.Bytes > 2129500 || res.Manifest != nil {
		t.Errorf("dry run: %+v", res)
	}
	if _, err := os.Stat(dry); !os.IsNotExist(err) {
		t.Errorf("dry run made %s: %v", dry, err)
	}
	for _, d := range res.Dropped {
		if d.Reason != "size" {
			t.Errorf("dropped by %s: %+v", d.Reason, d)
		}
	}

	// Into another layout: what trim says stayed is what is there.
	dst := "oci:" + filepath.Join(t.TempDir(), "trimmed")
	res = trimJSON(t, src, dst, "--max-size=2129500B")
	if res.DryRun || res.Destination != dst+":latest" || res.Format != "image-manifest" || res.Blobs != res.After.Blobs+2 {
		t.Errorf("trim: %+v", res)
	}
	rep := inspectJSON(t, dst)
	results := 0
	for _, rec := range rep.Records {
		results += len(rec.Results)
	}
	if rep.Counts.Records != res.After.Records || results != res.After.Results || rep.Counts.Blobs != res.After.Blobs {
		t.Errorf("inspect after trim: %+v and %d results; trim said %+v", rep.Counts, results, res.After)
	}
	ok(t, "verify", dst)
	cachetest.Unchanged(t, before, cachetest.Snapshot(t, merged))

	// The text says what went and what stayed.
	text := ok(t, "trim", src, "oci:"+filepath.Join(t.TempDir(), "text"), "--max-size", "2.1295MB", "--format", "oci-index").Stdout
	says(t, "trim", text,
		"trim "+src+":latest to oci:",
		"max size 2.1295MB (2129500 bytes)",
		"  before  17 records, 13 results, 13 layers, 13 blobs, 2.0 MiB (2130031 bytes)\n",
		"  after   12 records, 4 results, 8 layers, 8 blobs, ",
		"dropped 9 results, oldest first:\n  #",
		" by size, freed ",
		"dropped 5 records that lead to no kept result:\n",
		"dropped 5 blobs, ",
		":latest sha256:",
		" oci-index\n",
	)

	// In place: the tag moves to the trimmed cache, last.
	old := inspectJSON(t, src).Manifest.Digest
	res = trimJSON(t, src, src, "--max-size", "2129500")
	if got := inspectJSON(t, src); got.Manifest.Digest == old || got.Manifest.Digest.String() != strings.Trim(string(jsonField(t, res.Manifest, "digest")), `"`) {
		t.Errorf("in place: the tag names %s, was %s, trim wrote %s", got.Manifest.Digest, old, res.Manifest)
	}
	ok(t, "verify", src)

	// A budget that keeps everything, and one that keeps nothing.
	if r := ok(t, "trim", src, src, "--max-age", "876000h"); !strings.Contains(r.Stdout, "nothing to drop") {
		t.Errorf("trim --max-age 100 years:\n%s", r.Stdout)
	}
	kept := cachetest.Snapshot(t, merged)
	r := runTool(t, "trim", src, src, "--max-age", "1s", "--quiet")
	if r.Code != 1 || !strings.Contains(r.Stderr, "the budget leaves no result: nothing to write") || !strings.Contains(r.Stdout, "after   0 records") {
		t.Errorf("trim --max-age 1s: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	cachetest.Unchanged(t, kept, cachetest.Snapshot(t, merged))
}

// jsonField returns a field of a JSON object.
func jsonField(t *testing.T, obj json.RawMessage, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("%v: %s", err, obj)
	}
	return m[name]
}

func TestDiff(t *testing.T) {
	a, b := diffPair(t)
	A, B := "oci:"+a, "oci:"+b

	text := ok(t, "diff", A, B).Stdout
	says(t, "diff", text,
		"records  7 in both, 5 only in A, 5 only in B\n",
		"blobs    5 in both, 4 only in A (505 B), 4 only in B (509 B), 0 of another size\n",
		"1 divergence point: where B's cache first leaves A's\n  B#1 sha256:092c20c33f01\n",
		"     input 0 <- B#11 sha256:df3cd0b5f149 (A#9 sha256:df3cd0b5f149)  selector ",
		"     was A#10 sha256:ec92224f5b66\n",
		"  B#10 sha256:98d39543192b  in input 1 of B#0 sha256:03d6dab3c0ec, beside B#6 sha256:6c7b06853ee4\n",
		"\nonly in A\n  record A#0 sha256:03d6dab3c0ec\n",
		"\nonly in B\n",
		"  blob sha256:38a96e0e8f2527c59c04c087f177c5da1ed80186db4c3217378a6a63a3e707f6  105 B\n",
	)

	var rep struct {
		A, B       string
		Divergence []remotecache.DivergencePoint `json:"divergence"`
		Records    remotecache.RecordsDiff       `json:"records"`
		Blobs      remotecache.BlobsDiff         `json:"blobs"`
	}
	out := ok(t, "diff", "--json", A, B).Stdout
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("diff --json: %v\n%s", err, out)
	}
	if len(rep.Divergence) != 1 || rep.Divergence[0].Record.Index != 1 || !strings.HasPrefix(rep.Divergence[0].Record.Digest.Encoded(), "092c20c33f01") ||
		len(rep.Divergence[0].Inputs) != 1 || len(rep.Divergence[0].Was) != 1 || rep.A != A+":latest" || rep.B != B+":latest" ||
		len(rep.Records.OnlyA) != 5 || rep.Blobs.OnlyBBytes != 509 {
		t.Errorf("diff --json: %+v", rep)
	}

	dot := ok(t, "diff", A, B, "--dot").Stdout
	says(t, "diff --dot", dot, "digraph diff {", `"b1" [label="B#1 sha256:092c20c33f01\ndivergence point"`, "color=red, fontcolor=red, penwidth=3", `"a10" -> "b1" [label="was"`, "subgraph cluster_a {", `"b11" -> "b1"`)

	// A cache against itself, or a copy of it in another form.
	copied := "oci:" + filepath.Join(t.TempDir(), "copy")
	ok(t, "copy", "--quiet", A, copied, "--format", "manifest-list")
	if r := ok(t, "diff", A, copied); !strings.Contains(r.Stdout, "A and B hold the same cache") {
		t.Errorf("diff of a copy:\n%s", r.Stdout)
	}
	if out := ok(t, "diff", "--json", A, A).Stdout; !strings.Contains(out, `"divergence": []`) || strings.Contains(out, "null") {
		t.Errorf("diff --json of a cache and itself:\n%s", out)
	}
	clitest.FailsWith(t, runTool(t, "diff", "--quiet", A, "oci:"+filepath.Join(t.TempDir(), "nowhere")), "no oci-layout")
}

func TestVerifyRepair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	loc := "oci:" + dir
	ok(t, "copy", "--quiet", "oci:"+cachetest.Fixture(t), loc)
	// The blob of the COPY Dockerfile step goes, as a lifecycle rule or a
	// garbage collection may take it.
	lost := "sha256:258f55c32c55f89557d716faf546897e558dcb4c69dd6af1c6b5a270f61a16fc"
	if err := os.Remove(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(lost, "sha256:"))); err != nil {
		t.Fatal(err)
	}
	clitest.FailsWith(t, runTool(t, "verify", "--quiet", loc), "1 problem")

	before := cachetest.Snapshot(t, dir)
	r := ok(t, "verify", "--repair", "--dry-run", loc)
	if !strings.Contains(r.Stdout, loc+":latest: 1 blob missing\n  "+lost+"  323 B\n") || !strings.Contains(r.Stdout, "would drop 2 results:\n") || !strings.Contains(r.Stdout, "dry run: nothing written") {
		t.Errorf("verify --repair --dry-run:\n%s", r.Stdout)
	}
	cachetest.Unchanged(t, before, cachetest.Snapshot(t, dir))

	r = ok(t, "verify", "--repair", loc)
	says(t, "verify --repair", r.Stdout,
		"dropped 2 results:\n  #2 sha256:1e81099fa100 result 0  needs sha256:258f55c32c55\n  #9 sha256:ee1010d6a49d result 0  needs sha256:258f55c32c55\n",
		"  before  11 records, 8 results, 8 layers, 8 blobs, ",
		"  after   11 records, 6 results, 6 layers, 6 blobs, ",
		loc+":latest sha256:",
		loc+":latest: ok: manifest sha256:",
	)
	if !strings.Contains(r.Stderr, "tagging "+loc+":latest: done") {
		t.Errorf("no tagging step on stderr:\n%s", r.Stderr)
	}
	ok(t, "verify", loc)
	if r := ok(t, "verify", "--repair", loc); !strings.Contains(r.Stdout, "no blob missing: nothing to repair") || !strings.Contains(r.Stdout, ": ok: ") {
		t.Errorf("a second repair:\n%s", r.Stdout)
	}

	// Every blob gone: nothing left to write, and nothing is.
	for _, b := range inspectJSON(t, loc).Blobs {
		os.Remove(blobPath(dir, b.Digest))
	}
	before = cachetest.Snapshot(t, dir)
	r = runTool(t, "verify", "--repair", "--quiet", loc)
	clitest.FailsWith(t, r, "nothing left to write", "nothing written")
	after := cachetest.Snapshot(t, dir)
	// Opening the layout to write probes it for fsverity (containerd's
	// content store), which touches the directory's time, and no file.
	delete(before, ".")
	delete(after, ".")
	cachetest.Unchanged(t, before, after)

	clitest.FailsWith(t, runTool(t, "verify", "--repair", "--quiet", "oci:"+filepath.Join(t.TempDir(), "nowhere")), "not an OCI image layout")
}

// verify --repair of a registry repository: a blob the registry says is
// not found goes with the results that use it; a blob it refuses fails
// the repair, and the tag stays.
func TestVerifyRepairRegistry(t *testing.T) {
	host, reg := startRegistry(t)
	loc := "registry:" + host + "/team/cache:v1"
	ok(t, "copy", "--quiet", "oci:"+cachetest.Fixture(t), loc)
	blobs := inspectJSON(t, loc).Blobs

	reg.refuse(blobs[0].Digest)
	_, uploads, manifests := reg.stats()
	clitest.FailsWith(t, runTool(t, "verify", "--repair", "--quiet", loc), string(blobs[0].Digest), "403")
	if _, u, m := reg.stats(); u != uploads || m != manifests || reg.tagged("team/cache:v1") != cachetest.FixtureManifest {
		t.Errorf("a failed repair wrote: %d uploads, %d manifests", u-uploads, m-manifests)
	}

	reg.mu.Lock()
	reg.refused = map[digest.Digest]bool{}
	reg.mu.Unlock()
	// The blob of the COPY Dockerfile step, which two results use.
	lost := digest.Digest("sha256:258f55c32c55f89557d716faf546897e558dcb4c69dd6af1c6b5a270f61a16fc")
	reg.remove(lost)
	r := ok(t, "verify", "--repair", loc)
	if !strings.Contains(r.Stdout, "1 blob missing\n  "+string(lost)) || !strings.Contains(r.Stdout, "dropped 2 results") || !strings.Contains(r.Stdout, loc+": ok: manifest") {
		t.Errorf("verify --repair:\n%s", r.Stdout)
	}
	if got := reg.tagged("team/cache:v1"); got == cachetest.FixtureManifest || got == "" {
		t.Errorf("after the repair the tag names %s", got)
	}
	ok(t, "verify", loc)
}
