package azbtest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// Prune deletes a blob only if it is the one it listed: one that an
// export refreshed after the listing (here, just before the delete) is
// kept.
func TestPruneKeepsBlobsChangedSinceListed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	objstoretest.Export(t, e.store(t, azbstore.WithNames("gone")), objstoretest.Graph(27, 10, 0))
	if _, err := e.admin.NewBlobClient("manifests/gone").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var orphans []string
	for _, n := range e.names(t) {
		e.proxy.age(n, 2*time.Hour)
		orphans = append(orphans, n)
	}
	// Before the first delete reaches Azurite, an export refreshes the
	// blob it is for.
	var once sync.Once
	var refreshed string
	refresher := e.store(t, azbstore.WithTouchRefresh(time.Hour))
	e.proxy.SetFault(func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if opOf(r) == "DELETE" {
			once.Do(func() {
				refreshed = blobName(r)
				d := digest.Digest(strings.TrimPrefix(refreshed, "blobs/"))
				if _, err := refresher.Info(r.Context(), d); err != nil {
					t.Errorf("refreshing %s: %v", d, err)
				}
			})
		}
		return false
	})
	rep, err := e.store(t).Prune(ctx, azbstore.WithGracePeriod(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != len(orphans)-1 || rep.Kept != 1 {
		t.Errorf("removed %d, kept %d; want %d and 1 (the blob refreshed)", len(rep.Blobs), rep.Kept, len(orphans)-1)
	}
	if names := e.names(t); !slices.Equal(names, []string{refreshed}) {
		t.Errorf("blobs left %q, want the refreshed %s", names, refreshed)
	}
}
