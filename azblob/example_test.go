package azblob_test

import (
	"context"
	"log"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/azblob"
)

// Export a cache to a container in BuildKit's azblob layout, then read it
// back. The account comes from $AZURE_STORAGE_CONNECTION_STRING. (It
// needs an account, so it is compiled, not run.)
func ExampleNew() {
	ctx := context.Background()
	store, err := azblob.New(ctx, "buildkit-cache", azblob.WithPrefix("ci"), azblob.WithNames("main", "pr-42"))
	if err != nil {
		log.Fatal(err)
	}
	e, err := remotecache.NewExporter(store, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
	if err != nil {
		log.Fatal(err)
	}
	// e.Add(...) for each cache record, dependencies first; then the
	// blobs, and last the config under ci/manifests/main and
	// ci/manifests/pr-42:
	if _, err := e.Finalize(ctx); err != nil {
		log.Fatal(err)
	}

	desc, err := store.Resolve(ctx) // ci/manifests/main
	if err != nil {
		log.Fatal(err)
	}
	chains := remotecache.NewCacheChains()
	if err := remotecache.Import(ctx, store, desc, chains); err != nil {
		log.Fatal(err)
	}
}

// Open a container with an account URL and a shared key, as BuildKit's
// account_url, account_name and secret_access_key give them; a store a
// copy only reads from is opened read-only.
func ExampleWithSharedKey() {
	ctx := context.Background()
	store, err := azblob.New(ctx, "",
		azblob.WithAccountURL("https://myaccount.blob.core.windows.net"),
		azblob.WithSharedKey("myaccount", "a2V5"), // base64, from the portal
		azblob.WithReadOnly())
	if err != nil {
		log.Fatal(err)
	}
	log.Print(store) // azblob:buildkit-cache:buildkit
}
