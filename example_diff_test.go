package remotecache_test

import (
	"context"
	"fmt"
	"log"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/ocilayout"
)

// exOpenLatest opens the OCI layout dir, as ExampleImport does, and
// resolves its tag "latest". Close the store when done with it.
func exOpenLatest(dir string, opts ...ocilayout.Option) (*ocilayout.Store, ocispec.Descriptor) {
	s, err := ocilayout.Open(dir, opts...)
	if err != nil {
		log.Fatal(err)
	}
	desc, err := s.Resolve(context.Background(), "latest")
	if err != nil {
		log.Fatal(err)
	}
	return s, desc
}

// exReadCache opens the OCI layout dir read-only and reads the manifest and
// config of the cache tagged "latest". Close the store when done with it.
func exReadCache(dir string) (*ocilayout.Store, *remotecache.Manifest, *remotecache.CacheConfig) {
	ctx := context.Background()
	s, desc := exOpenLatest(dir, ocilayout.WithReadOnly())
	m, cfg, err := remotecache.ReadCache(ctx, s, desc)
	if err != nil {
		log.Fatal(err)
	}
	return s, m, cfg
}

// Compare two caches BuildKit wrote of one Dockerfile, before and after a
// build argument changed one RUN step, and find that step: the one
// divergence point. The COPY --from of the step's output is keyed also by
// the copied content, a new root record: a consequence, not a cause.
func ExampleDiff() {
	sa, ma, a := exReadCache("testdata/diff-pair/A")
	defer sa.Close()
	sb, mb, b := exReadCache("testdata/diff-pair/B")
	defer sb.Close()
	r, err := remotecache.Diff(a, b, ma.BlobSizes(), mb.BlobSizes())
	if err != nil {
		log.Fatal(err)
	}
	short := func(ref remotecache.RecordRef) string {
		return fmt.Sprintf("#%d %s", ref.Index, ref.Digest.Encoded()[:12])
	}
	fmt.Printf("records: %d in both, %d only in A, %d only in B\n", r.Records.Common, len(r.Records.OnlyA), len(r.Records.OnlyB))
	fmt.Printf("blobs: %d only in A (%d bytes), %d only in B (%d bytes)\n", len(r.Blobs.OnlyA), r.Blobs.OnlyABytes, len(r.Blobs.OnlyB), r.Blobs.OnlyBBytes)
	for _, d := range r.Divergence {
		fmt.Printf("divergence point %s\n", short(d.Record))
		for _, in := range d.Inputs {
			fmt.Printf("  input %d <- %s (%s in A)\n", in.Slot, short(in.Source), short(*in.InA))
		}
		for _, w := range d.Was {
			fmt.Printf("  was %s in A\n", short(w))
		}
	}
	for _, c := range r.Consequences {
		for _, l := range c.Beside {
			fmt.Printf("consequence %s: in input %d of %s beside %s\n", short(c.Record), l.Slot, short(l.Into), short(l.Sources[0]))
		}
	}
	// Output:
	// records: 7 in both, 5 only in A, 5 only in B
	// blobs: 4 only in A (505 bytes), 4 only in B (509 bytes)
	// divergence point #1 092c20c33f01
	//   input 0 <- #11 df3cd0b5f149 (#9 df3cd0b5f149 in A)
	//   was #10 ec92224f5b66 in A
	// consequence #10 98d39543192b: in input 1 of #0 03d6dab3c0ec beside #6 6c7b06853ee4
}
