package s3test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/objstoretest"
	s3store "github.com/buildcache/remotecache/s3"
)

// The conformance suite of the object stores, against the gateway.
func TestConformance(t *testing.T) {
	objstoretest.Suite{
		Open:      func(t testing.TB) objstoretest.Env { return suiteEnv{newEnv(t)} },
		RefreshOp: "COPY",
		Parallel:  true,
	}.Run(t)
}

// suiteEnv is an env as the suite drives it.
type suiteEnv struct{ *env }

func (e suiteEnv) Store(t testing.TB, s objstoretest.Settings) objstoretest.Store {
	return suiteStore{e.store(t, objstoretest.StoreOptions(s, s3store.WithNames, s3store.WithReadOnly)...)}
}

func (e suiteEnv) Proxy() *objstoretest.Proxy                    { return e.proxy }
func (e suiteEnv) Keys(t testing.TB) []string                    { return e.keys(t) }
func (e suiteEnv) Object(t testing.TB, key string) []byte        { return e.object(t, key) }
func (e suiteEnv) Age(t testing.TB, key string, d time.Duration) { e.age(t, key, d) }

func (e suiteEnv) ContentType(t testing.TB, key string) string {
	t.Helper()
	head, err := e.admin.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(head.ContentType)
}

func (e suiteEnv) Put(t testing.TB, key, body string) {
	t.Helper()
	if _, err := e.admin.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

func (e suiteEnv) Delete(t testing.TB, key string) {
	t.Helper()
	if _, err := e.admin.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
}

// suiteStore is a store whose Prune takes the suite's options.
type suiteStore struct{ *s3store.Store }

func (s suiteStore) Prune(ctx context.Context, o objstore.PruneOptions) (objstore.PruneReport, error) {
	rep, err := s.Store.Prune(ctx, objstoretest.PruneOptions(o, s3store.WithGracePeriod, s3store.WithDryRun)...)
	return objstore.PruneReport(rep), err
}
