package registry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/registry"
)

func TestNewReference(t *testing.T) {
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:5000/cache", "127.0.0.1:5000/cache:latest"},
		{"localhost:5000/team/cache:main", "localhost:5000/team/cache:main"},
		{"[::1]:5000/cache:v1", "[::1]:5000/cache:v1"},
		{"registry.example.com/cache@" + dgst, "registry.example.com/cache@" + dgst},
		{"cache", "docker.io/library/cache:latest"},
		{"user/cache:x", "docker.io/user/cache:x"},
	} {
		r, err := registry.New(tc.in)
		if err != nil {
			t.Errorf("New(%q): %v", tc.in, err)
			continue
		}
		if got := r.String(); got != tc.want {
			t.Errorf("New(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{"", "Upper/Case", "host:5000/cache:bad tag", "host/cache@sha256:short", "host/cache:"} {
		if _, err := registry.New(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("New(%q): %v, want invalid argument", in, err)
		}
	}
}

func TestOptionsValidated(t *testing.T) {
	for name, opt := range map[string]registry.Option{
		"WithRetries(0)":                 registry.WithRetries(0),
		"WithBackoff(0, 1s)":             registry.WithBackoff(0, time.Second),
		"WithBackoff(2s, 1s)":            registry.WithBackoff(2*time.Second, time.Second),
		"WithTransport(nil)":             registry.WithTransport(nil),
		"WithCredentialsFunc(nil)":       registry.WithCredentialsFunc(nil),
		"WithSpoolDir(\"\")":             registry.WithSpoolDir(""),
		"WithSpoolDir(file not a dir)":   registry.WithSpoolDir("registry_test.go"),
		"WithSpoolDir(missing dir)":      registry.WithSpoolDir(t.TempDir() + "/missing"),
		"WithBackoff(-1s, -1s) negative": registry.WithBackoff(-time.Second, -time.Second),
	} {
		if _, err := registry.New("127.0.0.1:5000/cache", opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := registry.New("127.0.0.1:5000/cache", registry.WithRetries(0)); err == nil || !strings.Contains(err.Error(), "retry attempts 0: must be at least 1") {
		t.Errorf("WithRetries(0): %v", err)
	}
	if _, err := registry.New("127.0.0.1:5000/cache",
		registry.WithRetries(1), registry.WithBackoff(time.Millisecond, time.Millisecond),
		registry.WithSpoolDir(t.TempDir()), registry.WithPlainHTTP(true),
		registry.WithCredentials("u", "p")); err != nil {
		t.Fatal(err)
	}
}

// A writer needs a whole descriptor; a bad one fails before any request.
func TestWriterNeedsDescriptor(t *testing.T) {
	r, err := registry.New("127.0.0.1:1/cache")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.Writer(ctx, content.WithRef("x")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no descriptor: %v", err)
	}
	bad := ocispec.Descriptor{Digest: digest.FromString("x"), Size: -1}
	if _, err := r.Writer(ctx, content.WithDescriptor(bad)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("negative size: %v", err)
	}
	if _, err := r.Info(ctx, "sha256:nope"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Info of a bad digest: %v", err)
	}
	if _, err := r.ReaderAt(ctx, ocispec.Descriptor{Digest: "nope"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReaderAt of a bad digest: %v", err)
	}
}
