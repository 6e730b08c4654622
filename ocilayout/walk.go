package ocilayout

import (
	"context"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// walk calls visit for each of roots and for every descriptor they reach
// through manifests and indexes (nested manifests, configs, layers), each
// digest once, a blob before its children, which images.Children reads
// from p. A visit that returns images.ErrSkipDesc keeps the walk from
// reading that blob's children; any other error ends the walk. Tag's
// completeness check and Prune's mark are its two callers.
//
// containerd's images.Walk with images.ChildrenHandler would do but for
// one thing: it refuses a walk of more than 10,000 references, duplicates
// counted (errdefs.ErrResourceExhausted), and a cache of more than 10,000
// layers is one this library writes (a 100,000-deep chain works,
// docs/design.md §4); such a cache could be neither tagged nor pruned.
func walk(ctx context.Context, p content.Provider, visit func(ocispec.Descriptor) error, roots ...ocispec.Descriptor) error {
	seen := map[digest.Digest]bool{}
	var descend func(ds []ocispec.Descriptor) error
	descend = func(ds []ocispec.Descriptor) error {
		for _, d := range ds {
			if seen[d.Digest] {
				continue
			}
			seen[d.Digest] = true
			if err := visit(d); errors.Is(err, images.ErrSkipDesc) {
				continue
			} else if err != nil {
				return err
			}
			children, err := images.Children(ctx, p, d)
			if err != nil {
				return errors.Wrapf(err, "blob %s", d.Digest)
			}
			if err := descend(children); err != nil {
				return err
			}
		}
		return nil
	}
	return descend(roots)
}
