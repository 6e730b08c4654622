package azbtest

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// The conformance suite of the object stores, against Azurite.
func TestConformance(t *testing.T) {
	objstoretest.Suite{
		Open:      func(t testing.TB) objstoretest.Env { return suiteEnv{newEnv(t)} },
		RefreshOp: "METADATA",
		Parallel:  true,
	}.Run(t)
}

// In a container that does not exist, a store reads nothing (not found)
// and, read-only or not, makes no container for reads.
func TestMissingContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newEnv(t, true)
	for _, s := range []*azbstore.Store{m.store(t), m.store(t, azbstore.WithReadOnly())} {
		if _, err := s.Resolve(ctx); !errdefs.IsNotFound(err) {
			t.Errorf("Resolve in a missing container = %v, want not found", err)
		}
		if _, err := s.Info(ctx, digest.FromString("x")); !errdefs.IsNotFound(err) {
			t.Errorf("Info in a missing container = %v, want not found", err)
		}
	}
	if n := m.proxy.Writes(); n != 0 {
		t.Errorf("reads made %d writes (%s)", n, m.proxy.Summary())
	}
}

// suiteEnv is an env as the suite drives it.
type suiteEnv struct{ *env }

func (e suiteEnv) Store(t testing.TB, s objstoretest.Settings) objstoretest.Store {
	return suiteStore{e.store(t, objstoretest.StoreOptions(s, azbstore.WithNames, azbstore.WithReadOnly)...)}
}

func (e suiteEnv) Proxy() *objstoretest.Proxy                    { return e.proxy.Proxy }
func (e suiteEnv) Keys(t testing.TB) []string                    { return e.names(t) }
func (e suiteEnv) Object(t testing.TB, key string) []byte        { return e.blob(t, key) }
func (e suiteEnv) Age(_ testing.TB, key string, d time.Duration) { e.proxy.age(key, d) }
func (e suiteEnv) Put(t testing.TB, key, body string)            { e.upload(t, key, body) }

func (e suiteEnv) ContentType(t testing.TB, key string) string {
	t.Helper()
	p, err := e.admin.NewBlobClient(key).GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *p.ContentType
}

func (e suiteEnv) Delete(t testing.TB, key string) {
	t.Helper()
	if _, err := e.admin.NewBlobClient(key).Delete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// upload writes a blob straight to Azurite.
func (e *env) upload(t testing.TB, name, body string) {
	t.Helper()
	if _, err := e.admin.NewBlockBlobClient(name).UploadBuffer(context.Background(), []byte(body), &blockblob.UploadBufferOptions{}); err != nil {
		t.Fatal(err)
	}
}

// suiteStore is a store whose Prune takes the suite's options.
type suiteStore struct{ *azbstore.Store }

func (s suiteStore) Prune(ctx context.Context, o objstore.PruneOptions) (objstore.PruneReport, error) {
	rep, err := s.Store.Prune(ctx, objstoretest.PruneOptions(o, azbstore.WithGracePeriod, azbstore.WithDryRun)...)
	return objstore.PruneReport(rep), err
}
