package main

import (
	"context"

	"github.com/buildcache/remotecache"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// storedCache is a cache read from a location: its store, the manifest its
// tag names and its decoded config.
type storedCache struct {
	loc  location
	src  source
	desc ocispec.Descriptor
	m    *remotecache.Manifest
	cfg  *remotecache.CacheConfig
}

// readCache opens l read-only and reads the manifest its tag names and the
// cache config. Close the cache's src when done with it.
func readCache(ctx context.Context, l location) (_ *storedCache, err error) {
	src, desc, err := openTagged(ctx, l, true)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			src.Close()
		}
	}()
	m, cfg, err := remotecache.ReadCache(ctx, src, desc)
	if err != nil {
		return nil, errors.Wrapf(err, "%s", l)
	}
	return &storedCache{loc: l, src: src, desc: desc, m: m, cfg: cfg}, nil
}

// readCaches reads every location, in order, and returns the caches and
// the function that closes them.
func readCaches(ctx context.Context, locs []location) ([]*storedCache, func(), error) {
	var caches []*storedCache
	closeAll := func() {
		for _, sc := range caches {
			sc.src.Close()
		}
	}
	for _, l := range locs {
		sc, err := readCache(ctx, l)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		caches = append(caches, sc)
	}
	return caches, closeAll, nil
}

// blobSizes are the sizes of the cache's layer blobs, from its manifest.
func (sc *storedCache) blobSizes() map[digest.Digest]int64 { return sc.m.BlobSizes() }
