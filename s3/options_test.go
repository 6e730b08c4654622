package s3_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/objstoretest/offline"
	"github.com/buildcache/remotecache/s3"
)

// isolate keeps the AWS settings of whoever runs the tests out of them.
func isolate(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

var local = []s3.Option{s3.WithEndpoint("http://127.0.0.1:9"), s3.WithCredentials("k", "s", "")}

func TestNewRefusesBadOptions(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bucket string
		opts   []s3.Option
	}{
		{"empty bucket", "", local},
		{"bucket with a slash", "b/p", local},
		{"no names", "b", append(local, s3.WithNames())},
		{"empty name", "b", append(local, s3.WithNames("a", ""))},
		{"endpoint without scheme", "b", []s3.Option{s3.WithEndpoint("127.0.0.1:9000")}},
		{"endpoint of another scheme", "b", []s3.Option{s3.WithEndpoint("ftp://host")}},
		{"empty region", "b", append(local, s3.WithRegion(""))},
		{"credentials without secret", "b", []s3.Option{s3.WithCredentials("k", "", "")}},
		{"zero attempts", "b", append(local, s3.WithRetryMaxAttempts(0))},
		{"nil client", "b", []s3.Option{s3.WithClient(nil)}},
		{"client and endpoint", "b", []s3.Option{s3.WithClient(awss3.New(awss3.Options{})), s3.WithEndpoint("http://x")}},
		{"negative touch refresh", "b", append(local, s3.WithTouchRefresh(-1))},
		{"zero threshold", "b", append(local, s3.WithMultipartThreshold(0))},
		{"small parts", "b", append(local, s3.WithPartSize(1<<20))},
		{"zero part concurrency", "b", append(local, s3.WithPartConcurrency(0))},
		{"small max copy size", "b", append(local, s3.WithMaxCopySize(1<<20))},
		{"missing spool dir", "b", append(local, s3.WithSpoolDir(filepath.Join(t.TempDir(), "no")))},
		{"spool dir a file", "b", append(local, s3.WithSpoolDir(file))},
		{"one prefix for both", "b", append(local, s3.WithManifestsPrefix("x/"), s3.WithBlobsPrefix("x/"))},
		{"no region, no endpoint", "b", []s3.Option{s3.WithCredentials("k", "s", "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s3.New(ctx, tc.bucket, tc.opts...); !errdefs.IsInvalidArgument(err) {
				t.Errorf("New = %v, want invalid argument", err)
			}
		})
	}
}

func TestKeysAndString(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	d := digest.FromString("x")
	for _, tc := range []struct {
		opts              []s3.Option
		str, config, blob string
	}{
		{nil, "s3:b:buildkit", "manifests/buildkit", "blobs/" + d.String()},
		{[]s3.Option{s3.WithPrefix("ci/"), s3.WithNames("main", "pr")}, "s3:b/ci/:main;pr", "ci/manifests/main", "ci/blobs/" + d.String()},
		// Plain string joins, as BuildKit's.
		{[]s3.Option{s3.WithPrefix("ci"), s3.WithManifestsPrefix("m"), s3.WithBlobsPrefix("")}, "s3:b/ci:buildkit", "cimbuildkit", "ci" + d.String()},
	} {
		store, err := s3.New(ctx, "b", append(local, tc.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		offline.CheckKeys(t, store, d, tc.str, tc.config, tc.blob)
	}
}

// The checks that need no server (offline.Checks): a read-only store
// refuses writers and Prune without a request, Info refuses a digest that
// is not one, and a write that cannot be spooled fails, and so does its
// Commit.
func TestOffline(t *testing.T) {
	isolate(t)
	offline.Checks[s3.Option, s3.PruneOption, s3.PruneReport]{
		Open: func(t testing.TB, opts ...s3.Option) offline.Store[s3.PruneOption, s3.PruneReport] {
			store, err := s3.New(context.Background(), "b", append(local, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			return store
		},
		ReadOnly:      s3.WithReadOnly(),
		SpoolDir:      s3.WithSpoolDir,
		NegativeGrace: s3.WithGracePeriod(-1),
	}.Run(t)
}
