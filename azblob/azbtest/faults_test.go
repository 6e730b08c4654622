package azbtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// isBlob tells whether r is about a layer blob.
func isBlob(r *http.Request) bool {
	return strings.HasPrefix(blobName(r), "blobs/sha256:")
}

// is matches the requests of op on layer blobs (and every listing).
func is(op string) func(r *http.Request) bool {
	return func(r *http.Request) bool { return opOf(r) == op && (isBlob(r) || op == "LIST") }
}

// busy answers 503 ServerBusy.
func busy(w http.ResponseWriter, r *http.Request) bool { serverBusy(w, r); return true }

// Throttling and connections reset mid-upload and mid-download, on Put
// Blob, blocks, the block list, the config, properties and reads, are
// retried by the SDK (a broken download by its retry reader, from where it
// broke): the export is whole and reads back whole.
func TestFaultsStillExportWhole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, azbstore.WithBlockSize(1<<20))
	big := objstoretest.Graph(11, 4, 5<<19+1)
	small := objstoretest.Graph(12, 30, 2000)

	// downloadReset lets Azurite answer a blob download, and resets the
	// connection after 300 bytes of the body.
	var rp http.Handler
	downloadReset := func(w http.ResponseWriter, r *http.Request) bool {
		rp.ServeHTTP(&resetWriter{ResponseWriter: w, n: 300}, r)
		return true
	}
	rp = e.proxy.Handler()
	plan := &objstoretest.FaultPlan{Faults: []objstoretest.Fault{
		{Name: "503 on a blob's properties", Match: is("HEAD"), Do: busy},
		{Name: "503 on a Put Blob", Match: is("PUT"), Do: busy},
		{Name: "reset in a Put Blob", Match: func(r *http.Request) bool { return is("PUT")(r) && r.ContentLength > 1000 },
			Do: objstoretest.ResetUpload(1000)},
		{Name: "503 on a block", Match: is("BLOCK"), Do: busy},
		{Name: "reset in a block", Match: is("BLOCK"), Do: objstoretest.ResetUpload(512 << 10)},
		{Name: "503 on a block list", Match: is("BLOCKLIST"), Do: busy},
		{Name: "503 on the config", Match: func(r *http.Request) bool {
			return opOf(r) == "PUT" && strings.HasPrefix(blobName(r), "manifests/")
		}, Do: busy},
		{Name: "503 on a download", Match: is("GET"), Do: busy},
		{Name: "reset in a download", Match: func(r *http.Request) bool { return is("GET")(r) && r.Header.Get("x-ms-range") == "" },
			Do: downloadReset},
	}}
	e.proxy.SetFault(plan.Handle)
	for _, g := range []*cachegen.Graph{big, small} {
		objstoretest.ExportReadBack(t, store, g)
		objstoretest.Verify(t, store)
	}
	plan.CheckAllFired(t)
	e.proxy.SetFault(nil)
	objstoretest.Verify(t, store)
	noUncommitted(t, e, false)
}

// noUncommitted fails the test if a blob of the container has blocks
// that were not committed (or, with none, if there is any such blob).
func noUncommitted(t testing.TB, e *env, none bool) {
	t.Helper()
	p := e.admin.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{UncommittedBlobs: true}})
	for p.More() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			bl, err := e.admin.NewBlockBlobClient(*b.Name).GetBlockList(context.Background(), "all", nil)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case none && len(bl.CommittedBlocks) == 0 && len(bl.UncommittedBlocks) > 0:
				t.Logf("blob %s: %d uncommitted blocks, not a blob (Azure drops them after a week)", *b.Name, len(bl.UncommittedBlocks))
			case none:
				t.Errorf("blob %s written", *b.Name)
			case len(bl.UncommittedBlocks) > 0 && len(bl.CommittedBlocks) == 0:
				t.Errorf("blob %s: only uncommitted blocks", *b.Name)
			}
		}
	}
}

// A blob the server keeps answering 503 for, past the SDK's retries,
// fails the export with a class that is not "not found", naming the blob;
// and a copy out of the store fails rather than drop the blob's results
// (objstoretest.CheckUnavailablePastRetries).
func TestUnavailablePastRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, azbstore.WithClientOptions(clientOptions(t, 1)))
	err := objstoretest.CheckUnavailablePastRetries(t, suiteEnv{e}, store, serverBusy, func(name string) {
		// The exporter's Info failed (and did not say not found), so it
		// wrote the blob, which failed too.
		if h, p := e.proxy.CountKey("HEAD", name), e.proxy.CountKey("PUT", name); h != 2 || p != 2 {
			t.Errorf("%d HEADs and %d Put Blobs of the blob, want 2 each (one retry)", h, p)
		}
	})
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("Info = %v; want it in one line", err)
	}
}

// A staged upload that fails (a block refused) or is cancelled leaves no
// blob: its blocks are never committed.
func TestFailedUploadsLeaveNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, azbstore.WithBlockSize(1<<20), azbstore.WithBlockConcurrency(1))
	ctx := context.Background()
	dt := bytes.Repeat([]byte("remotecache"), 5<<17) // 6.9 MiB: 7 blocks
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(dt), Size: int64(len(dt))}

	// block counts the Put Blocks: it returns the number of r, 0 for
	// another request.
	var mu sync.Mutex
	blocks := 0
	block := func(r *http.Request) int {
		if opOf(r) != "BLOCK" {
			return 0
		}
		mu.Lock()
		defer mu.Unlock()
		blocks++
		return blocks
	}

	// Block 3 is refused: a 400 the SDK does not retry.
	e.proxy.SetFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if block(r) == 3 {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("x-ms-error-code", "InvalidBlobOrBlock")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidBlobOrBlock</Code><Message>refused by the test</Message></Error>`)
			return true
		}
		return false
	})
	err := content.WriteBlob(ctx, store, "refused", bytes.NewReader(dt), desc)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "block 3 of 7") || !strings.Contains(err.Error(), desc.Digest.String()) {
		t.Errorf("WriteBlob with a refused block = %v", err)
	}
	if n := e.proxy.Count("BLOCKLIST"); n != 0 {
		t.Errorf("%d block lists committed", n)
	}

	// Cancelled while the second block is in flight.
	blocks = 0
	objstoretest.CheckCancelledWrite(t, e.proxy.Proxy, store, dt, desc, func(r *http.Request) bool { return block(r) == 2 })
	if n := e.proxy.Count("BLOCKLIST"); n != 0 {
		t.Errorf("%d block lists committed", n)
	}
	if names := e.names(t); len(names) != 0 {
		t.Errorf("blobs left: %q", names)
	}
	noUncommitted(t, e, true)
}
