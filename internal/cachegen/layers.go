package cachegen

import (
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layer returns the blob of a new layer made at t: a new blob or, now and
// then, an existing one.
func (gen *generator) layer(t time.Time) digest.Digest {
	r := gen.rng
	if n := len(gen.g.BlobOrder); n > 0 && r.Float64() < gen.opts.ReuseBlobFraction {
		return gen.g.BlobOrder[r.IntN(n)]
	}
	return gen.newBlob(t, r.Float64() < 0.15)
}

// result makes a result of the record dgst, created at t (moved by a few
// nanoseconds if another result of dgst with other blobs has that time).
func (gen *generator) result(dgst digest.Digest, t time.Time, chain []digest.Digest) Result {
	for {
		clash := false
		for _, x := range gen.times[dgst] {
			if x.t.Equal(t) && !sameDigests(x.blobs, chain) {
				clash = true
				break
			}
		}
		if !clash {
			break
		}
		t = t.Add(1)
	}
	gen.times[dgst] = append(gen.times[dgst], resultTime{t, chain})
	res := Result{CreatedAt: t, Layers: make([]ocispec.Descriptor, len(chain))}
	for i, d := range chain {
		// Descriptors are filled in by finishBlobs, once digests are known;
		// until then Digest holds the blob's provisional name.
		res.Layers[i] = ocispec.Descriptor{Digest: d}
	}
	return res
}

func sameDigests(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// newBlob makes a blob, or reuses one once there are MaxBlobs. Its real
// digest is computed in finishBlobs; until then it is named by a
// provisional digest.
func (gen *generator) newBlob(t time.Time, docker bool) digest.Digest {
	r := gen.rng
	if n := len(gen.g.BlobOrder); gen.opts.MaxBlobs > 0 && n >= gen.opts.MaxBlobs {
		return gen.g.BlobOrder[r.IntN(n)]
	}
	gen.blobN++
	size := gen.opts.BlobSize
	if size <= 0 {
		size = 16 + r.Int64N(49)
	}
	mt := ocispec.MediaTypeImageLayerGzip
	if docker {
		mt = images.MediaTypeDockerSchema2LayerGzip
	}
	key := r.Uint64()
	name := digest.Digest("provisional:" + strconv.Itoa(gen.blobN))
	b := Blob{
		Key:     key,
		Missing: gen.opts.MissingFraction > 0 && r.Float64() < gen.opts.MissingFraction,
		Descriptor: ocispec.Descriptor{
			MediaType: mt,
			Size:      size,
			Annotations: map[string]string{
				AnnotationUncompressed: digest.FromString("diff:" + strconv.FormatUint(key, 16)).String(),
				AnnotationCreatedAt:    t.UTC().Format(time.RFC3339Nano),
			},
		},
	}
	gen.g.Blobs[name] = b
	gen.g.BlobOrder = append(gen.g.BlobOrder, name)
	return name
}

// finishBlobs computes the digests of the blobs and fills in the
// descriptors of every result.
func (gen *generator) finishBlobs() {
	g := gen.g
	real := make(map[digest.Digest]digest.Digest, len(g.Blobs))
	blobs := make(map[digest.Digest]Blob, len(g.Blobs))
	for i, name := range g.BlobOrder {
		b := g.Blobs[name]
		b.Descriptor.Digest = b.computeDigest()
		if _, dup := blobs[b.Descriptor.Digest]; dup {
			// Two keys with the same bytes: only possible with a broken
			// generator, as keys are 64 random bits and sizes >= 1.
			panic(fmt.Sprintf("cachegen: blob %d has the digest of another blob", i))
		}
		real[name] = b.Descriptor.Digest
		blobs[b.Descriptor.Digest] = b
		g.BlobOrder[i] = b.Descriptor.Digest
	}
	g.Blobs = blobs
	// Fill in the descriptors. Repeated ops share their Layers with the op
	// they repeat: those are filled in already.
	for i := range g.Ops {
		for j := range g.Ops[i].Results {
			ls := g.Ops[i].Results[j].Layers
			for k := range ls {
				if d, ok := real[ls[k].Digest]; ok {
					ls[k] = g.Blobs[d].Descriptor
				}
			}
		}
	}
	// Drop the blobs no op uses (possible when ops were cut at n).
	used := make(map[digest.Digest]bool, len(blobs))
	for j := range g.Ops {
		for _, res := range g.Ops[j].Results {
			for _, l := range res.Layers {
				used[l.Digest] = true
			}
		}
	}
	kept := g.BlobOrder[:0]
	for _, d := range g.BlobOrder {
		if used[d] {
			kept = append(kept, d)
		} else {
			delete(g.Blobs, d)
		}
	}
	g.BlobOrder = kept
}
