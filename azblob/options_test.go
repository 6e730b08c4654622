package azblob_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/objstoretest/offline"
)

// azuriteKey is Azurite's well-known key of devstoreaccount1 (Azurite's
// README): no secret.
const azuriteKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// isolate keeps the Azure settings of whoever runs the tests out of them.
func isolate(t *testing.T) {
	t.Helper()
	t.Setenv(azbstore.EnvConnectionString, "")
	os.Unsetenv(azbstore.EnvConnectionString)
}

// local is an account on a port nothing listens on: no test here makes
// a request.
var local = []azbstore.Option{azbstore.WithAccountURL("http://127.0.0.1:9/devstoreaccount1"), azbstore.WithSharedKey("devstoreaccount1", azuriteKey)}

func TestNewRefusesBadOptions(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := azblob.NewClientWithNoCredential("http://127.0.0.1:9/devstoreaccount1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		container string
		opts      []azbstore.Option
	}{
		{"container with a slash", "c/p", local},
		{"container in capitals", "Cache", local},
		{"short container", "ab", local},
		{"container with two hyphens", "a--b", local},
		{"container ending with a hyphen", "cache-", local},
		{"no names", "c01", append(local, azbstore.WithNames())},
		{"empty name", "c01", append(local, azbstore.WithNames("a", ""))},
		{"name with ..", "c01", append(local, azbstore.WithNames("../x"))},
		{"absolute prefix", "c01", append(local, azbstore.WithPrefix("/ci"))},
		{"prefix with ..", "c01", append(local, azbstore.WithPrefix("ci/../.."))},
		{"one prefix for both", "c01", append(local, azbstore.WithManifestsPrefix("x/"), azbstore.WithBlobsPrefix("x"))},
		{"account URL without scheme", "c01", []azbstore.Option{azbstore.WithAccountURL("127.0.0.1:10000")}},
		{"account URL of another scheme", "c01", []azbstore.Option{azbstore.WithAccountURL("ftp://host")}},
		{"empty connection string", "c01", []azbstore.Option{azbstore.WithConnectionString("")}},
		{"bad connection string", "c01", []azbstore.Option{azbstore.WithConnectionString("AccountName=x")}},
		{"connection string and account URL", "c01", append(local, azbstore.WithConnectionString("UseDevelopmentStorage=true"))},
		{"shared key without key", "c01", []azbstore.Option{azbstore.WithSharedKey("a", "")}},
		{"shared key not base64", "c01", []azbstore.Option{azbstore.WithSharedKey("a", "not base64!")}},
		{"default credential and shared key", "c01", append(local, azbstore.WithDefaultCredential())},
		{"default credential without URL", "c01", []azbstore.Option{azbstore.WithDefaultCredential()}},
		{"nil client", "c01", []azbstore.Option{azbstore.WithClient(nil)}},
		{"nil client options", "c01", append(local, azbstore.WithClientOptions(nil))},
		{"client and account URL", "c01", []azbstore.Option{azbstore.WithClient(client), azbstore.WithAccountURL("http://x")}},
		{"client and client options", "c01", []azbstore.Option{azbstore.WithClient(client), azbstore.WithClientOptions(&azblob.ClientOptions{})}},
		{"negative touch refresh", "c01", append(local, azbstore.WithTouchRefresh(-1))},
		{"small blocks", "c01", append(local, azbstore.WithBlockSize(64<<10))},
		{"huge blocks", "c01", append(local, azbstore.WithBlockSize(5000<<20))},
		{"zero block concurrency", "c01", append(local, azbstore.WithBlockConcurrency(0))},
		{"missing spool dir", "c01", append(local, azbstore.WithSpoolDir(filepath.Join(t.TempDir(), "no")))},
		{"spool dir a file", "c01", append(local, azbstore.WithSpoolDir(file))},
		{"read-only creating its container", "c01", append(local, azbstore.WithReadOnly(), azbstore.WithCreateContainer(true))},
		{"no account", "c01", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := azbstore.New(ctx, tc.container, tc.opts...); !errdefs.IsInvalidArgument(err) {
				t.Errorf("New = %v, want invalid argument", err)
			}
		})
	}
}

// The error of a connection string that cannot be used does not show it:
// it holds the account key.
func TestConnectionStringNotShown(t *testing.T) {
	isolate(t)
	for _, secret := range []string{"AccountName=acct;AccountKey=c2VjcmV0;junk", "AccountKey=c2VjcmV0"} {
		_, err := azbstore.New(context.Background(), "c01", azbstore.WithConnectionString(secret))
		if !errdefs.IsInvalidArgument(err) || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("New with %q = %v; want invalid argument, not showing the key", secret, err)
		}
		t.Setenv(azbstore.EnvConnectionString, secret)
		_, err = azbstore.New(context.Background(), "c01")
		if !errdefs.IsInvalidArgument(err) || strings.Contains(err.Error(), "c2VjcmV0") || !strings.Contains(err.Error(), azbstore.EnvConnectionString) {
			t.Errorf("New with $%s %q = %v; want invalid argument naming the variable, not showing the key", azbstore.EnvConnectionString, secret, err)
		}
	}
}

func TestKeysAndString(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	d := digest.FromString("x")
	for _, tc := range []struct {
		container         string
		opts              []azbstore.Option
		str, config, blob string
	}{
		{"", nil, "azblob:buildkit-cache:buildkit", "manifests/buildkit", "blobs/" + d.String()},
		{"cache", []azbstore.Option{azbstore.WithPrefix("ci/"), azbstore.WithNames("main", "pr")}, "azblob:cache/ci:main;pr", "ci/manifests/main", "ci/blobs/" + d.String()},
		// Joined as paths, as BuildKit's filepath.Join.
		{"cache", []azbstore.Option{azbstore.WithPrefix("ci"), azbstore.WithNames("main")}, "azblob:cache/ci:main", "ci/manifests/main", "ci/blobs/" + d.String()},
		{"cache", []azbstore.Option{azbstore.WithPrefix("a//b/./"), azbstore.WithManifestsPrefix("m/"), azbstore.WithBlobsPrefix(""), azbstore.WithNames("x/y")}, "azblob:cache/a/b:x/y", "a/b/m/x/y", "a/b/" + d.String()},
	} {
		store, err := azbstore.New(ctx, tc.container, append(local, tc.opts...)...)
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
	offline.Checks[azbstore.Option, azbstore.PruneOption, azbstore.PruneReport]{
		Open: func(t testing.TB, opts ...azbstore.Option) offline.Store[azbstore.PruneOption, azbstore.PruneReport] {
			store, err := azbstore.New(context.Background(), "c01", append(local, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			return store
		},
		ReadOnly:      azbstore.WithReadOnly(),
		SpoolDir:      azbstore.WithSpoolDir,
		NegativeGrace: azbstore.WithGracePeriod(-1),
	}.Run(t)
}
