package s3

import (
	"context"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/objstoretest/offline"
)

func TestIsLocalEndpoint(t *testing.T) {
	for endpoint, want := range map[string]bool{
		"http://127.0.0.1:9000":        true,
		"http://[::1]:9000":            true,
		"https://10.1.2.3":             true,
		"http://localhost:7070":        true,
		"http://minio.localhost":       true,
		"https://s3.amazonaws.com":     false,
		"https://storage.example.com":  false,
		"https://127.0.0.1.nip.io":     false,
		"":                             false,
		"http://LOCALHOST:1/some/path": true,
	} {
		if got := isLocalEndpoint(endpoint); got != want {
			t.Errorf("isLocalEndpoint(%q) = %v, want %v", endpoint, got, want)
		}
	}
}

func TestClientOptions(t *testing.T) {
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	ctx := context.Background()
	for _, tc := range []struct {
		opts      []Option
		pathStyle bool
		region    string
	}{
		{[]Option{WithEndpoint("http://127.0.0.1:9000")}, true, "us-east-1"},
		{[]Option{WithEndpoint("https://s3.example.com"), WithRegion("eu-west-3")}, false, "eu-west-3"},
		{[]Option{WithEndpoint("https://s3.example.com"), WithPathStyle(true)}, true, "us-east-1"},
		{[]Option{WithEndpoint("http://localhost:9000"), WithPathStyle(false)}, false, "us-east-1"},
		{[]Option{WithRegion("us-west-2")}, false, "us-west-2"},
	} {
		s, err := New(ctx, "b", tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		o := s.client.Options()
		if o.UsePathStyle != tc.pathStyle || o.Region != tc.region {
			t.Errorf("%d options: path style %v, region %q; want %v, %q", len(tc.opts), o.UsePathStyle, o.Region, tc.pathStyle, tc.region)
		}
	}
	// The service's endpoint from the environment decides too.
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://localhost:9000")
	s, err := New(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if o := s.client.Options(); !o.UsePathStyle || o.Region != "us-east-1" || aws.ToString(o.BaseEndpoint) != "http://localhost:9000" {
		t.Errorf("with AWS_ENDPOINT_URL_S3: path style %v, region %q, endpoint %q", o.UsePathStyle, o.Region, aws.ToString(o.BaseEndpoint))
	}
	os.Unsetenv("AWS_ENDPOINT_URL_S3")
	t.Setenv("AWS_REGION", "ap-south-1")
	s, err = New(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.client.Options().Region; r != "ap-south-1" {
		t.Errorf("region %q from AWS_REGION", r)
	}
}

func status(code int) error {
	return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("response")}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err   error
		class error
	}{
		{&smithy.GenericAPIError{Code: "NoSuchKey"}, errdefs.ErrNotFound},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, errdefs.ErrNotFound},
		{&smithy.GenericAPIError{Code: "AccessDenied"}, errdefs.ErrPermissionDenied},
		{&smithy.GenericAPIError{Code: "SignatureDoesNotMatch"}, errdefs.ErrUnauthenticated},
		{&smithy.GenericAPIError{Code: "SlowDown"}, errdefs.ErrUnavailable},
		{status(404), errdefs.ErrNotFound},
		{status(403), errdefs.ErrPermissionDenied},
		{status(401), errdefs.ErrUnauthenticated},
		{status(412), errdefs.ErrFailedPrecondition},
		{status(416), errdefs.ErrOutOfRange},
		{status(429), errdefs.ErrUnavailable},
		{status(500), errdefs.ErrUnavailable},
		{status(503), errdefs.ErrUnavailable},
		{status(501), errdefs.ErrNotImplemented},
		{status(400), errdefs.ErrInvalidArgument},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, errdefs.ErrUnavailable},
	} {
		wrapped := errors.Wrap(tc.err, "operation error S3: HeadObject")
		got := classify(wrapped)
		if !errors.Is(got, tc.class) || got.Error() != wrapped.Error() {
			t.Errorf("classify(%v) = %v, not of class %v", tc.err, got, tc.class)
		}
		if tc.class != errdefs.ErrNotFound && errdefs.IsNotFound(got) {
			t.Errorf("classify(%v) is not found", tc.err)
		}
	}
	offline.CheckClassifyPassesThrough(t, classify)
}

func TestUpdatedAt(t *testing.T) {
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later := mod.Add(time.Hour)
	bk := later.In(time.FixedZone("CET", 3600)).String() + " m=+12.345678901"
	for _, tc := range []struct {
		meta map[string]string
		want time.Time
	}{
		{nil, mod},
		{map[string]string{"updated-at": later.Format(time.RFC3339Nano)}, later},
		{map[string]string{"updated-at": bk}, later},
		{map[string]string{"updated-at": mod.Add(-time.Hour).Format(time.RFC3339Nano)}, mod},
		{map[string]string{"updated-at": "yesterday"}, mod},
	} {
		if got := updatedAt(&mod, tc.meta); !got.Equal(tc.want) {
			t.Errorf("updatedAt(%v) = %v, want %v", tc.meta, got, tc.want)
		}
	}
}

func TestCopySource(t *testing.T) {
	if got := copySource("bucket", "ci/blobs/sha256:ab cd?"); got != "bucket/ci/blobs/sha256:ab%20cd%3F" {
		t.Errorf("copySource = %q", got)
	}
}

// The defaults the package documents are the shared store's.
func TestDefaultsShared(t *testing.T) {
	if DefaultName != objstore.DefaultName || DefaultTouchRefresh != objstore.DefaultTouchRefresh || DefaultGracePeriod != objstore.DefaultGracePeriod {
		t.Error("the package's defaults are not internal/objstore's")
	}
}
