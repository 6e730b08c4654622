package registry_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/errclass"
	"github.com/buildcache/remotecache/registry"
)

// Every error out of the package has an errdefs class, a registry that
// cannot be reached included: there it is errdefs.ErrUnavailable.
func TestErrorsHaveClasses(t *testing.T) {
	ctx := context.Background()
	// A port on loopback that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	r, err := registry.New(host+"/cache:v1", registry.WithRetries(1), registry.WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("blob")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	for name, op := range map[string]func() error{
		"Resolve": func() error { _, err := r.Resolve(ctx); return err },
		"Info":    func() error { _, err := r.Info(ctx, desc.Digest); return err },
		"ReaderAt": func() error {
			ra, err := r.ReaderAt(ctx, desc)
			if err == nil {
				_, err = ra.ReadAt(make([]byte, 1), 0)
				ra.Close()
			}
			return err
		},
		"WriteBlob": func() error {
			return content.WriteBlob(ctx, r, "ref", bytes.NewReader(blob), desc)
		},
	} {
		err := op()
		if err == nil {
			t.Errorf("%s against a closed port succeeded", name)
			continue
		}
		if !errclass.Has(err) || !errdefs.IsUnavailable(err) {
			t.Errorf("%s: %v: want class unavailable", name, err)
		}
	}
	if _, err := registry.New("Not A Reference!"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("New(bad reference) = %v, want invalid argument", err)
	}
}
