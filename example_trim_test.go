package remotecache_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/ocilayout"
)

// Trim a cache that BuildKit wrote to the results of its last 150 ms and
// to 2,129,300 bytes of blobs, a little under its size, and write what is
// left to another directory, as "remotecache trim SRC DST --max-age 150ms
// --max-size 2129300" would. The age drops the five oldest results; the
// size, then, the oldest left, whose two blobs no newer result uses.
func ExampleTrim() {
	ctx := context.Background()
	src, m, cfg := exReadCache("testdata/buildkit-local-cache")
	defer src.Close()

	// "Now" is the time of the cache's newest result, for a stable output.
	now := time.Date(2026, 11, 27, 0, 24, 2, 75672773, time.UTC)
	trimmed, rep, err := remotecache.Trim(cfg, m.BlobSizes(),
		remotecache.WithMaxAge(150*time.Millisecond), remotecache.WithMaxSize(2129300),
		remotecache.WithNow(now))
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range []struct {
		what string
		n    remotecache.CacheCounts
	}{{"before", rep.Before}, {"after", rep.After}} {
		fmt.Printf("%-6s %d records, %d results, %d blobs, %d bytes\n", c.what, c.n.Records, c.n.Results, c.n.Blobs, c.n.Bytes)
	}
	for _, d := range rep.Dropped {
		fmt.Printf("dropped %s (%s): %s, freed %d bytes\n", d.Record.Digest.Encoded()[:12], d.Reason, d.CreatedAt.Format(time.RFC3339Nano), d.Freed)
	}

	// Write it: the trimmed config into an Exporter, with the source's
	// blobs; Finalize writes layers, config, manifest; then the tag moves.
	dir := exTempDir("trimmed")
	defer os.RemoveAll(dir)
	dst, err := ocilayout.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer dst.Close()
	exp, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(m.Format))
	if err != nil {
		log.Fatal(err)
	}
	if err := remotecache.ParseConfig(trimmed, m.Descriptors(src), exp); err != nil {
		log.Fatal(err)
	}
	md := exFinalize(ctx, exp)
	if err := dst.Tag(ctx, "latest", md); err != nil {
		log.Fatal(err)
	}
	problems, err := remotecache.Verify(ctx, dst, md)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("written: %d problems\n", len(problems))
	// Output:
	// before 11 records, 8 results, 8 blobs, 2129735 bytes
	// after  11 records, 2 results, 6 blobs, 2129232 bytes
	// dropped 1616bd1ac1df (age): 2026-11-27T00:24:01.57562085Z, freed 0 bytes
	// dropped 7aa9aa174a45 (age): 2026-11-27T00:24:01.591419505Z, freed 0 bytes
	// dropped 2bbf17499e7e (age): 2026-11-27T00:24:01.709524994Z, freed 0 bytes
	// dropped df06414d47d6 (age): 2026-11-27T00:24:01.815750691Z, freed 0 bytes
	// dropped ee1010d6a49d (age): 2026-11-27T00:24:01.83505267Z, freed 0 bytes
	// dropped 1e81099fa100 (size): 2026-11-27T00:24:01.951053249Z, freed 503 bytes
	// written: 0 problems
}

// exFinalize finalizes exp and returns the descriptor of the manifest it
// wrote, from Finalize's response.
func exFinalize(ctx context.Context, exp remotecache.Exporter) ocispec.Descriptor {
	res, err := exp.Finalize(ctx)
	if err != nil {
		log.Fatal(err)
	}
	desc, ok, err := remotecache.ResponseManifest(res)
	if err != nil {
		log.Fatal(err)
	}
	if !ok {
		log.Fatal("nothing exported")
	}
	return desc
}
