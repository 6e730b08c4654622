// Package objstore is the build cache store that the object storage
// modules (s3 and azblob) share: BuildKit's config-only layout of blobs
// and cache configs in a bucket or container, on top of a small Backend
// that each module implements with its SDK.
//
// # Layout
//
//	BLOBS_DIR DIGEST      a layer blob, e.g. blobs/sha256:<hex>
//	CONFIG_KEY(NAME)      the cache config, one per name
//
// There is no OCI manifest: the cache config is what names the cache,
// and its layers carry annotations from which descriptors are rebuilt.
// How the keys are joined (plain strings for s3, paths for azblob) is the
// module's: Config gives the directories and the key of a name.
//
// # What the Store does
//
// A *Store is a content.Provider, content.InfoProvider, content.Ingester
// and remotecache.ManifestTagger:
//
//   - Writer spools a write (in memory, then in an unlinked file) and at
//     Commit checks its size and digest before Backend.Put sends it; a
//     cache config is written under every name, and only in the
//     config-only form; manifests and indexes are refused.
//   - ReaderAt serves the configs Resolve read from memory and blobs by
//     ranged reads (Backend.Get at an offset), opened again at the offset
//     reached when a body breaks off.
//   - Info asks Backend.Head and refreshes a blob older than the touch
//     refresh age with Backend.Touch, unless the store is read-only.
//   - Resolve reads the config under the first name.
//   - Prune lists blobs, then configs, and removes the blobs no config
//     names that are older than the grace period: with a conditional
//     Backend.Delete where the backend has one (Config.DeleteIfMatch),
//     else after asking Backend.Head again.
//
// # Errors
//
// A Backend returns errors with an errdefs class, not found only for a
// missing object, so that a 503 never makes a blob unavailable; the Store
// adds what it was doing and keeps the class.
package objstore
