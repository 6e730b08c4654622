package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/registry"
)

// bareTransport answers every request itself with status code, and, as a
// RoundTripper may, leaves the response's Request (and Status) unset.
type bareTransport struct {
	code     int
	header   http.Header
	requests atomic.Int64
}

func (t *bareTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.requests.Add(1)
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range t.header {
		h[k] = v
	}
	body := `{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}`
	if t.code == http.StatusUnauthorized {
		body = `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`
	}
	if req.Method == http.MethodHead {
		body = ""
	}
	return &http.Response{
		StatusCode: t.code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}, nil
}

// A transport of WithTransport need not set the Request of its responses:
// every operation fails with the status's class and the method and address
// of the request, and nothing panics.
func TestTransportWithoutResponseRequest(t *testing.T) {
	ctx := context.Background()
	blob := []byte("blob")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	ops := []struct {
		name string
		op   func(r *registry.Remote) error
	}{
		{"Info", func(r *registry.Remote) error {
			_, err := r.Info(ctx, desc.Digest)
			return err
		}},
		{"Resolve", func(r *registry.Remote) error {
			_, err := r.Resolve(ctx)
			return err
		}},
		{"ReaderAt", func(r *registry.Remote) error {
			ra, err := r.ReaderAt(ctx, desc)
			if err == nil {
				ra.Close()
			}
			return err
		}},
		{"Writer", func(r *registry.Remote) error {
			w, err := r.Writer(ctx, content.WithDescriptor(desc))
			if err != nil {
				return err
			}
			defer w.Close()
			if _, err := w.Write(blob); err != nil {
				return err
			}
			return w.Commit(ctx, desc.Size, desc.Digest)
		}},
	}
	for _, tc := range []struct {
		code   int
		header http.Header
		is     func(error) bool
	}{
		{http.StatusServiceUnavailable, nil, errdefs.IsUnavailable},
		{http.StatusInternalServerError, nil, errdefs.IsUnavailable},
		{http.StatusServiceUnavailable, http.Header{"Retry-After": {"3600"}}, errdefs.IsUnavailable},
		{http.StatusUnauthorized, http.Header{"Www-Authenticate": {`Basic realm="regtest"`}}, errdefs.IsUnauthorized},
	} {
		for _, o := range ops {
			name, op := o.name, o.op
			rt := &bareTransport{code: tc.code, header: tc.header}
			r, err := registry.New("127.0.0.1:5000/cache:v1", registry.WithTransport(rt),
				registry.WithCredentials("u", "p"),
				registry.WithRetries(2), registry.WithBackoff(time.Millisecond, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			err = func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%d: %s panicked: %v", tc.code, name, p)
					}
				}()
				return op(r)
			}()
			if err == nil || !tc.is(err) {
				t.Errorf("%d: %s: %v, want an error of the status's class", tc.code, name, err)
				continue
			}
			if !strings.Contains(err.Error(), "127.0.0.1:5000/v2/cache/") || !strings.Contains(err.Error(), strings.TrimSpace(http.StatusText(tc.code))) {
				t.Errorf("%d: %s: %v does not give the request's address and the status", tc.code, name, err)
			}
			t.Logf("%d: %s: %v", tc.code, name, err)
			if rt.requests.Load() == 0 {
				t.Errorf("%d: %s: no request reached the transport", tc.code, name)
			}
		}
	}
}

// content.OpenWriter, with which content.WriteBlob and the Exporter open
// writers, calls Writer again for as long as it fails with class
// unavailable (a locked ref, to containerd). A registry that is
// unavailable for an hour fails the write instead, with that class, after
// one request: the POST that uploads the small blob whole (Writer sends no
// existence check of its own).
func TestWriteBlobUnavailable(t *testing.T) {
	blob := []byte("blob")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	rt := &bareTransport{code: http.StatusServiceUnavailable, header: http.Header{"Retry-After": {"3600"}}}
	r, err := registry.New("127.0.0.1:5000/cache:v1", registry.WithTransport(rt))
	if err != nil {
		t.Fatal(err)
	}
	// A guard, not a measure: a hang shows as a context that ran out.
	ctx, cancel := context.WithTimeout(context.Background(), cachetest.HangGuard)
	defer cancel()
	err = content.WriteBlob(ctx, r, "blob", bytes.NewReader(blob), desc)
	if ctx.Err() != nil {
		t.Fatalf("WriteBlob still running after %v and %d requests: %v", cachetest.HangGuard, rt.requests.Load(), err)
	}
	var later *registry.RetryLaterError
	if !errdefs.IsUnavailable(err) || !errors.As(err, &later) || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("WriteBlob: %v, want a RetryLaterError of class unavailable with the registry's status", err)
	}
	if n := rt.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
