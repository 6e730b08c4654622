package azbtest

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/containerd/errdefs"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// A blob over the block size is staged in blocks and committed with a
// block list; it reads back whole, from any offset.
func TestBlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	store := e.store(t, azbstore.WithBlockSize(1<<20), azbstore.WithBlockConcurrency(2))
	g := objstoretest.Graph(4, 3, 5<<19+3) // 2.5 MiB and 3 bytes: 3 blocks
	objstoretest.Export(t, store, g)
	blobs := 0
	for _, b := range g.Blobs {
		if !b.Missing {
			blobs++
		}
	}
	if n, l, p := e.proxy.Count("BLOCK"), e.proxy.Count("BLOCKLIST"), e.proxy.Count("PUT"); n != 3*blobs || l != blobs || p != 1 {
		t.Errorf("%d blocks, %d block lists, %d Put Blobs for %d blobs; want 3 blocks and a list each, and one Put Blob (the config)", n, l, p, blobs)
	}
	objstoretest.Verify(t, store)
	for d, b := range g.Blobs {
		if b.Missing {
			continue
		}
		bl, err := e.admin.NewBlockBlobClient("blobs/"+d.String()).GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(bl.CommittedBlocks) != 3 || len(bl.UncommittedBlocks) != 0 {
			t.Errorf("blob %s: %d committed blocks, %d uncommitted", d, len(bl.CommittedBlocks), len(bl.UncommittedBlocks))
		}
	}

	objstoretest.ReadAtRandom(t, store, g, 4)
}

// Names are joined as paths, as BuildKit's filepath.Join joins them: "ci"
// and "ci/" are one prefix.
func TestPrefixJoinsAsPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := objstoretest.Graph(5, 10, 0)
	a := e.store(t, azbstore.WithPrefix("ci"), azbstore.WithNames("main"))
	if s := a.String(); s != "azblob:"+e.container+"/ci:main" {
		t.Errorf("String() = %q", s)
	}
	objstoretest.Export(t, a, g)
	names := e.names(t)
	for _, n := range names {
		if n != "ci/manifests/main" && !strings.HasPrefix(n, "ci/blobs/sha256:") {
			t.Errorf("blob %q", n)
		}
	}
	if !slices.Contains(names, "ci/manifests/main") {
		t.Errorf("no config at ci/manifests/main: %q", names)
	}
	// The same cache through "ci/": nothing new to send.
	b := e.store(t, azbstore.WithPrefix("ci/"), azbstore.WithNames("main"))
	e.proxy.Reset()
	objstoretest.Export(t, b, g)
	if n := e.proxy.BlobUploaded.Load(); n != 0 || !slices.Equal(e.names(t), names) {
		t.Errorf("through prefix ci/: %d blob bytes sent, blobs %q", n, e.names(t))
	}
	objstoretest.Verify(t, b)
	// Other directories, and a name with a slash.
	c := e.store(t, azbstore.WithPrefix("x/y"), azbstore.WithManifestsPrefix("m"), azbstore.WithBlobsPrefix("b/"), azbstore.WithNames("pr/42"))
	objstoretest.Export(t, c, g)
	if !slices.Contains(e.names(t), "x/y/m/pr/42") {
		t.Errorf("no config at x/y/m/pr/42: %q", e.names(t))
	}
	objstoretest.Verify(t, c)
}

// An export into a container that does not exist creates it, once, as
// BuildKit's exporter does; with WithCreateContainer(false) it fails,
// saying so.
func TestCreatesContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	g := objstoretest.Graph(8, 20, 0)
	_, err := objstoretest.TryExport(context.Background(), e.store(t, azbstore.WithCreateContainer(false)), g)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "ContainerNotFound") {
		t.Errorf("export without creating the container = %v", err)
	}
	if n := e.proxy.Count("CREATE"); n != 0 {
		t.Errorf("%d container creations", n)
	}
	store := e.store(t)
	objstoretest.Export(t, store, g)
	if n := e.proxy.Count("CREATE"); n < 1 || n > 4 {
		t.Errorf("%d container creations, want 1 to 4 (the exporter's concurrency)", n)
	}
	if _, err := e.admin.GetProperties(context.Background(), nil); err != nil {
		t.Errorf("container: %v", err)
	}
	objstoretest.Verify(t, store)
}

// Each way of giving the account works: a connection string, the account
// URL with a shared key (BuildKit's account_url, account_name and
// secret_access_key), $AZURE_STORAGE_CONNECTION_STRING, and a client of
// the caller's.
func TestCredentials(t *testing.T) {
	e := newEnv(t)
	g := objstoretest.Graph(10, 10, 0)
	clientOpts := clientOptions(t, 3)
	for _, tc := range []struct {
		name string
		env  string
		opts []azbstore.Option
	}{
		{"connection string", "", []azbstore.Option{azbstore.WithConnectionString(connectionString(e.proxy.URL))}},
		{"shared key", "", []azbstore.Option{azbstore.WithAccountURL(e.proxy.URL + "/" + account), azbstore.WithSharedKey(account, accountKey)}},
		{"environment", connectionString(e.proxy.URL), nil},
		{"client", "", []azbstore.Option{azbstore.WithClient(client(t, e.proxy.URL))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(azbstore.EnvConnectionString, tc.env)
				defer os.Unsetenv(azbstore.EnvConnectionString)
			}
			opts := append(tc.opts, azbstore.WithNames(tc.name))
			if tc.name != "client" {
				opts = append(opts, azbstore.WithClientOptions(clientOpts))
			}
			store, err := azbstore.New(context.Background(), e.container, opts...)
			if err != nil {
				t.Fatal(err)
			}
			objstoretest.Export(t, store, g)
			objstoretest.Verify(t, store)
		})
	}
	// A wrong key is refused, and it is not "not found".
	store, err := azbstore.New(context.Background(), e.container, azbstore.WithAccountURL(e.proxy.URL+"/"+account),
		azbstore.WithSharedKey(account, "d3Jvbmc="), azbstore.WithClientOptions(clientOpts))
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Resolve(context.Background())
	if err == nil || errdefs.IsNotFound(err) || !(errdefs.IsPermissionDenied(err) || errdefs.IsUnauthorized(err)) {
		t.Errorf("Resolve with a wrong key = %v, want permission denied or unauthenticated", err)
	}
}
