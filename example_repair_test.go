package remotecache_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/buildcache/remotecache"
)

// A store lost a blob that a cache names (a lifecycle rule, a registry's
// garbage collection): repair the cache in place, as "remotecache verify
// --repair oci:DIR" would, and move the tag, last.
func ExampleRepair() {
	ctx := context.Background()
	dir := exTempDir("repair")
	defer os.RemoveAll(dir)
	if err := os.CopyFS(dir, os.DirFS("testdata/buildkit-local-cache")); err != nil {
		log.Fatal(err)
	}
	// The blob of the COPY Dockerfile step goes.
	lost := "258f55c32c55f89557d716faf546897e558dcb4c69dd6af1c6b5a270f61a16fc"
	if err := os.Remove(filepath.Join(dir, "blobs", "sha256", lost)); err != nil {
		log.Fatal(err)
	}

	store, desc := exOpenLatest(dir)
	defer store.Close()
	rep, err := remotecache.Repair(ctx, store, desc, store)
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range rep.Missing {
		fmt.Printf("missing %s\n", b.Digest.Encoded()[:12])
	}
	for _, d := range rep.Dropped {
		fmt.Printf("dropped the result of %s\n", d.Record.Digest.Encoded()[:12])
	}
	fmt.Printf("%d of %d results kept\n", rep.After.Results, rep.Before.Results)
	if rep.Written {
		if err := store.Tag(ctx, "latest", rep.Manifest); err != nil {
			log.Fatal(err)
		}
	}
	problems, err := remotecache.Verify(ctx, store, rep.Manifest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("repaired %s cache: %d problems\n", rep.Format, len(problems))
	// Output:
	// missing 258f55c32c55
	// dropped the result of 1e81099fa100
	// dropped the result of ee1010d6a49d
	// 6 of 8 results kept
	// repaired image-manifest cache: 0 problems
}

// exTempDir makes a new directory, its name starting with pattern, in the
// directory for temporary files. Remove it when done with it.
func exTempDir(pattern string) string {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		log.Fatal(err)
	}
	return dir
}
