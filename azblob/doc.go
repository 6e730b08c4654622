// Package azblob is a build cache location in an Azure Blob Storage
// container, in the layout of BuildKit's type=azblob cache, so that
// BuildKit reads what this package writes and this package reads what
// BuildKit writes. A *Store is the ingester an export writes to (with
// remotecache.FormatConfigOnly) and the provider an import reads from.
//
// It is a module of its own (github.com/buildcache/remotecache/azblob),
// so that the core library never pulls in the Azure SDK.
//
// # Layout
//
// There is no OCI manifest: the cache config (remotecache.CacheConfig,
// media type application/vnd.buildkit.cacheconfig.v0) is the blob that
// names the cache, and every one of its layers carries LayerAnnotations
// (media type, diffID, size, creation time), from which descriptors are
// rebuilt on import. Both are block blobs:
//
//	PREFIX/MANIFESTS_PREFIX/NAME   the cache config, one per name
//	PREFIX/BLOBS_PREFIX/DIGEST     a layer blob, e.g. blobs/sha256:<hex>
//
// in the container "buildkit-cache" unless New is given another. The
// manifests prefix is "manifests" and the blobs prefix "blobs" by
// default, the name "buildkit". The parts are joined as paths, as BuildKit
// joins them (filepath.Join): the prefixes "ci" and "ci/" both give
// "ci/manifests/buildkit". With several names (BuildKit's name=a;b) an
// export writes the config under each, in order; Resolve reads the first.
// (BuildKit's azblob importer reads every name and merges the caches.)
//
// # Export
//
//	store, err := azblob.New(ctx, "buildkit-cache", azblob.WithPrefix("ci"))
//	e, err := remotecache.NewExporter(store, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
//	// e.Add(...) for each record, then:
//	_, err = e.Finalize(ctx)
//
// The exporter asks Info for each blob: a blob in the container is not
// sent again. Writes are kept (in memory, over 4 MiB in a file) until
// Commit has checked their size and digest, then uploaded: up to the block
// size (32 MiB) with one Put Blob, else staged in blocks of that size, 4
// at a time, read from the spool, so that the SDK can retry each without a
// copy, and committed with Put Block List. Nothing is visible until then;
// Azure drops uncommitted blocks after a week. The config is written
// last, under every name, and only in the config-only form: a write of an
// OCI or Docker manifest or index, or of a config whose layers lack
// annotations, is refused with errdefs.ErrInvalidArgument. A write into a
// missing container creates it, as BuildKit's exporter does
// (WithCreateContainer).
//
// # Refresh (touch_refresh)
//
// When Info finds a blob older than the touch refresh age (24h), it first
// sets the blob's metadata again, with a new "updated_at": that gives the
// blob a new Last-Modified time without moving its bytes, so that
// lifecycle management rules which delete blobs some days after their
// last modification keep the blobs a live cache still uses. BuildKit's
// azblob exporter does not refresh (its s3 exporter has touch_refresh,
// which this follows). A store opened WithReadOnly never refreshes,
// uploads, deletes or creates a container; open a store that a copy reads
// from read-only, since the exporter asks its sources' Info too.
//
// # Import
//
//	desc, err := store.Resolve(ctx) // the config under the first name
//	err = remotecache.Import(ctx, store, desc, target)
//
// ReaderAt serves the config Resolve read (it is not under the blobs
// directory) and blobs by ranged downloads, resumed at the offset reached
// when a body breaks off.
//
// # Errors
//
// Errors carry an errdefs class that errors.Is finds, and errors.As finds
// the SDK's *azcore.ResponseError in them: not found only when Azure says
// so (BlobNotFound, ContainerNotFound, a 404); 403 is
// ErrPermissionDenied, ServerBusy, 5xx and broken connections
// ErrUnavailable, and so on. Requests are retried by the SDK's retry policy
// (3 retries unless WithClientOptions says otherwise).
//
// # Prune
//
// Prune removes blobs that no config under the manifests directory names
// and that are older than a grace period (by default the larger of 1h and
// the touch refresh age, 24h), since an export writes its blobs before its
// config and reuses younger ones unrefreshed. See Prune for what it cannot
// see.
//
// # Credentials
//
// WithConnectionString, else WithSharedKey (account name and key),
// else WithAccountURL with a shared access signature in its query, else
// WithAccountURL with the SDK's default credential chain (azidentity:
// environment, workload and managed identity, Azure CLI), as BuildKit
// uses it without a secret_access_key. With none of them,
// $AZURE_STORAGE_CONNECTION_STRING.
package azblob
