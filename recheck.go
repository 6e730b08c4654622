package remotecache

import (
	"context"
	"slices"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

// rewriteMissing asks the ingester, if it can say, for every blob the
// manifest names, and writes again those it no longer has. It tells
// whether it wrote any; a check that fails is no answer.
func (e *exporter) rewriteMissing(ctx context.Context, pr *progress, layers []ocispec.Descriptor, descs DescriptorProvider, configDesc ocispec.Descriptor, configJSON []byte) (bool, error) {
	ip, ok := e.ingester.(content.InfoProvider)
	if !ok {
		return false, nil
	}
	all := append(slices.Clone(layers), configDesc)
	gone := make([]bool, len(all))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.concurrency(descs))
	for i, d := range all {
		g.Go(func() error {
			if _, err := ip.Info(gctx, d.Digest); errdefs.IsNotFound(err) {
				gone[i] = true
			}
			return nil
		})
	}
	g.Wait()
	var missingLayers []ocispec.Descriptor
	configGone := false
	for i, d := range all {
		switch {
		case !gone[i]:
		case i == len(all)-1:
			configGone = true
		default:
			missingLayers = append(missingLayers, d)
		}
	}
	if len(missingLayers) == 0 && !configGone {
		return false, nil
	}
	missing, err := e.writeLayers(ctx, pr, missingLayers, descs, map[digest.Digest]bool{}, " again")
	if err != nil {
		return false, err
	}
	if len(missing) > 0 {
		return false, errors.Wrapf(errdefs.ErrNotFound, "writing layer %s again: not found in its source", missing[0])
	}
	if configGone {
		st := pr.start("writing config "+configDesc.Digest.String()+" again", configDesc.Size)
		if err := st.done(errors.Wrapf(e.writeBlob(ctx, st, kindConfig, configDesc, bytesProvider(configJSON)), "writing config %s again", configDesc.Digest)); err != nil {
			return false, err
		}
	}
	return true, nil
}
