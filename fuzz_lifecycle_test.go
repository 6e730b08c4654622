package remotecache_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/buildcache/remotecache"
)

// fzCorpus returns the inputs of a corpus directory in the go fuzz format
// whose one argument is a []byte (testdata/fuzz/FuzzParse).
func fzCorpus(f *testing.F, dir string) [][]byte {
	f.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		dt, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		lines := bytes.SplitN(dt, []byte("\n"), 3)
		if len(lines) < 2 || string(lines[0]) != "go test fuzz v1" {
			f.Fatalf("%s: not a fuzz corpus file", e.Name())
		}
		arg := bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSpace(lines[1]), []byte("[]byte(")), []byte(")"))
		s, err := strconv.Unquote(string(arg))
		if err != nil {
			f.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, []byte(s))
	}
	return out
}

// FuzzTrimDiff runs Trim and Diff on decoded configs: those Parse refuses
// they refuse too; on the others, with budgets from the input, Trim keeps
// its rules (tmTrim: the input untouched, the output sound, kept records
// whole, the others gone) and its budgets, a config against itself has no
// difference, and against its trimmed self nothing only in the trimmed
// one. The seeds are FuzzParse's, and the diff-pair's configs.
func FuzzTrimDiff(f *testing.F) {
	for _, s := range fzCorpus(f, filepath.Join("testdata", "fuzz", "FuzzParse")) {
		f.Add(s, int64(-1), int64(0))
		f.Add(s, int64(500), int64(1500))
	}
	for _, dir := range []string{dfA, dfB} {
		_, cfg := lcLoad(f, dir)
		dt, err := json.Marshal(cfg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(dt, int64(2129000), int64(200))
	}
	now := time.Date(2026, 12, 1, 9, 11, 2, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte, maxSize, maxAgeMillis int64) {
		var cfg remotecache.CacheConfig
		if json.Unmarshal(data, &cfg) != nil {
			return
		}
		sizes := lcSizes(&cfg)
		if len(remotecache.CheckConfig(&cfg)) > 0 {
			if _, _, err := remotecache.Trim(&cfg, sizes, remotecache.WithMaxSize(0)); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Trim of a config with problems: %v", err)
			}
			if _, err := remotecache.Diff(&cfg, &cfg, sizes, sizes); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Diff of a config with problems: %v", err)
			}
			return
		}
		var opts []remotecache.TrimOption
		if maxSize >= 0 {
			opts = append(opts, remotecache.WithMaxSize(maxSize))
		}
		if maxAgeMillis > 0 {
			opts = append(opts, remotecache.WithMaxAge(time.Duration(maxAgeMillis)*time.Millisecond), remotecache.WithNow(now))
		}
		if len(opts) == 0 {
			opts = append(opts, remotecache.WithMaxSize(0))
		}
		out, rep := tmTrim(t, &cfg, sizes, opts...)
		if maxSize >= 0 && rep.After.Bytes > maxSize {
			t.Fatalf("trimmed to %d bytes, over the budget of %d", rep.After.Bytes, maxSize)
		}

		self, err := remotecache.Diff(&cfg, &cfg, sizes, sizes)
		if err != nil || !self.Empty() {
			t.Fatalf("a config against itself: %+v, %v", self, err)
		}
		d, err := remotecache.Diff(&cfg, out, sizes, sizes)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Records.OnlyB)+len(d.Results.OnlyB)+len(d.Blobs.OnlyB)+len(d.Divergence)+len(d.Consequences) > 0 {
			t.Fatalf("the trimmed config has what the input has not: %+v", d)
		}
		if len(d.Records.OnlyA) > len(rep.DroppedRecords) || len(d.Blobs.OnlyA) != len(rep.DroppedBlobs) {
			t.Fatalf("Diff finds %d records and %d blobs gone, Trim says %d and %d", len(d.Records.OnlyA), len(d.Blobs.OnlyA), len(rep.DroppedRecords), len(rep.DroppedBlobs))
		}
	})
}
