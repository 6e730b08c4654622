package s3test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstoretest"
	s3store "github.com/buildcache/remotecache/s3"
)

// busy answers 503 SlowDown.
func busy(w http.ResponseWriter, r *http.Request) bool { slowDown(w, r); return true }

func isBlob(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/blobs/sha256:")
}

func isPart(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Has("partNumber")
}

// Throttling and connections reset mid-upload, on single PUTs, parts, the
// config and HEADs, are retried by the SDK: the export is whole, and no
// upload is left unfinished.
func TestFaultsStillExportWhole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, s3store.WithMultipartThreshold(6<<20), s3store.WithPartSize(5<<20))
	big := objstoretest.Graph(11, 4, 6<<20+1)
	small := objstoretest.Graph(12, 30, 2000)

	plan := &objstoretest.FaultPlan{Faults: []objstoretest.Fault{
		{Name: "503 on a blob HEAD", Match: func(r *http.Request) bool { return r.Method == http.MethodHead && isBlob(r) }, Do: busy},
		{Name: "503 on a blob PUT", Match: func(r *http.Request) bool { return r.Method == http.MethodPut && isBlob(r) && !isPart(r) }, Do: busy},
		{Name: "reset in a blob PUT", Match: func(r *http.Request) bool {
			return r.Method == http.MethodPut && isBlob(r) && !isPart(r) && r.ContentLength > 1000
		}, Do: objstoretest.ResetUpload(1000)},
		{Name: "503 on a part", Match: isPart, Do: busy},
		{Name: "reset in a part", Match: isPart, Do: objstoretest.ResetUpload(1 << 20)},
		{Name: "503 on create multipart", Match: func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Query().Has("uploads") }, Do: busy},
		{Name: "503 on complete multipart", Match: func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Query().Has("uploadId") }, Do: busy},
		{Name: "503 on the config", Match: func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
		}, Do: busy},
	}}
	e.proxy.SetFault(plan.Handle)
	for _, g := range []*cachegen.Graph{big, small} {
		objstoretest.ExportReadBack(t, store, g)
	}
	plan.CheckAllFired(t)
	e.proxy.SetFault(nil)
	objstoretest.Verify(t, store)
	noUploadsLeft(t, e)
}

// noUploadsLeft fails the test if the bucket has unfinished multipart
// uploads.
func noUploadsLeft(t testing.TB, e *env) {
	t.Helper()
	out, err := e.admin.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range out.Uploads {
		t.Errorf("multipart upload of %s left unfinished", *u.Key)
	}
}

// A blob the server keeps answering 503 for, past the SDK's retries,
// fails the export with a class that is not "not found", naming the blob;
// and a copy out of the store fails rather than drop the blob's results
// (objstoretest.CheckUnavailablePastRetries).
func TestUnavailablePastRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, s3store.WithRetryMaxAttempts(2))
	objstoretest.CheckUnavailablePastRetries(t, suiteEnv{e}, store, slowDown, func(key string) {
		if n := e.proxy.CountKey("PUT", key); n != 2 {
			t.Errorf("%d PUTs of the blob, want 2 (WithRetryMaxAttempts(2))", n)
		}
	})
}

// A multipart upload that fails (a part refused) or is cancelled leaves
// neither an object nor an unfinished upload.
func TestFailedUploadsLeaveNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, s3store.WithMultipartThreshold(5<<20), s3store.WithPartSize(5<<20), s3store.WithPartConcurrency(1))
	ctx := context.Background()
	dt := bytes.Repeat([]byte("remotecache"), 2<<20) // 22 MiB: 5 parts
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	key := "blobs/" + desc.Digest.String()

	// Part 3 is refused: a 400 the SDK does not retry.
	e.proxy.SetFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if isPart(r) && r.URL.Query().Get("partNumber") == "3" {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `<Error><Code>InvalidPart</Code><Message>refused by the test</Message></Error>`)
			return true
		}
		return false
	})
	err := content.WriteBlob(ctx, store, "refused", bytes.NewReader(dt), desc)
	if err == nil || !strings.Contains(err.Error(), "part 3") {
		t.Errorf("WriteBlob with a refused part = %v", err)
	}
	if n := e.proxy.Count("DELETE"); n != 1 {
		t.Errorf("%d DELETEs, want 1 (the abort)", n)
	}

	// Cancelled while parts are in flight.
	objstoretest.CheckCancelledWrite(t, e.proxy, store, dt, desc, func(r *http.Request) bool {
		return isPart(r) && r.URL.Query().Get("partNumber") == "2"
	})
	for _, k := range e.keys(t) {
		t.Errorf("object %s left (want none; blob key %s)", k, key)
	}
	noUploadsLeft(t, e)
}
