package refchains

import (
	remotecache "github.com/buildcache/remotecache"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// addResults adds each result that is not there yet: one with the same
// CreatedAt and the same blobs is the same result.
func (r *record) addResults(results []remotecache.Result) {
	for _, res := range results {
		if !r.hasResult(res) {
			r.results = append(r.results, res)
		}
	}
}

func (r *record) hasResult(res remotecache.Result) bool {
	for _, x := range r.results {
		if x.CreatedAt.Equal(res.CreatedAt) && sameBlobs(x.Remote, res.Remote) {
			return true
		}
	}
	return false
}

func sameBlobs(a, b *remotecache.Remote) bool {
	var da, db []ocispec.Descriptor
	if a != nil {
		da = a.Descriptors
	}
	if b != nil {
		db = b.Descriptors
	}
	if len(da) != len(db) {
		return false
	}
	for i := range da {
		if da[i].Digest != db[i].Digest {
			return false
		}
	}
	return true
}

// best returns the newest result; ties go to the one added first.
func (r *record) best() *remotecache.Result {
	var b *remotecache.Result
	for i := range r.results {
		if b == nil || r.results[i].CreatedAt.After(b.CreatedAt) {
			b = &r.results[i]
		}
	}
	return b
}

func compareResults(a, b *remotecache.Result) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		default:
			return 1
		}
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	da, db := remoteDescs(a.Remote), remoteDescs(b.Remote)
	return slices.CompareFunc(da, db, func(x, y ocispec.Descriptor) int {
		return strings.Compare(string(x.Digest), string(y.Digest))
	})
}

func remoteDescs(r *remotecache.Remote) []ocispec.Descriptor {
	if r == nil {
		return nil
	}
	return r.Descriptors
}
