// Package s3 is a build cache location in an S3 bucket, in the layout of
// BuildKit's type=s3 cache, so that BuildKit reads what this package
// writes and this package reads what BuildKit writes. A *Store is the
// ingester an export writes to (with remotecache.FormatConfigOnly) and
// the provider an import reads from.
//
// It is a module of its own (github.com/buildcache/remotecache/s3), so
// that the core library never pulls in the AWS SDK.
//
// # Layout
//
// There is no OCI manifest: the cache config (remotecache.CacheConfig,
// media type application/vnd.buildkit.cacheconfig.v0) is the object that
// names the cache, and every one of its layers carries LayerAnnotations
// (media type, diffID, size, creation time), from which descriptors are
// rebuilt on import.
//
//	PREFIX MANIFESTS_PREFIX NAME   the cache config, one per name
//	PREFIX BLOBS_PREFIX DIGEST     a layer blob, e.g. blobs/sha256:<hex>
//
// The manifests prefix is "manifests/" and the blobs prefix "blobs/" by
// default, the name "buildkit". The parts are joined as plain strings, as
// BuildKit joins them: a prefix "ci" without a trailing slash gives
// "cimanifests/buildkit". With several names (BuildKit's name=a;b) an
// export writes the config under each, in order; Resolve reads the first.
//
// # Export
//
//	store, err := s3.New(ctx, "bucket", s3.WithPrefix("ci/"))
//	e, err := remotecache.NewExporter(store, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
//	// e.Add(...) for each record, then:
//	_, err = e.Finalize(ctx)
//
// The exporter asks Info for each blob: a blob in the bucket is not sent
// again. Writes are kept (in memory, over 4 MiB in a file) until Commit
// has checked their size and digest, then uploaded: with one PUT below the
// multipart threshold (16 MiB), else in parts (8 MiB, 4 at a time) read
// from the spool, so the SDK can sign and retry each without a copy; a
// failed or cancelled multipart upload is aborted. The config is written
// last, under every name, and only in the config-only form: a write of an
// OCI or Docker manifest or index, or of a config whose layers lack
// annotations, is refused with errdefs.ErrInvalidArgument.
//
// # Refresh (touch_refresh)
//
// When Info finds a blob older than the touch refresh age (24h), it first
// copies the object onto itself with its metadata and content type and a
// new "updated-at", as BuildKit's exporter does: bucket lifecycle rules
// that expire objects by age then keep the blobs a live cache still uses.
// Blobs over 5 GiB, CopyObject's limit, are copied in parts. Some servers
// keep an object's modification time when it is copied onto itself
// (Versity's posix backend does), so the refresh time is the later of the
// object's LastModified and its updated-at. A store opened WithReadOnly
// never refreshes, uploads or deletes; open a store that a copy reads from
// read-only, since the exporter asks its sources' Info too.
//
// # Import
//
//	desc, err := store.Resolve(ctx) // the config under the first name
//	err = remotecache.Import(ctx, store, desc, target)
//
// ReaderAt serves the config Resolve read (it is not under the blobs
// prefix) and blobs by ranged GETs, opened again at the offset reached
// when a body breaks off.
//
// # Errors
//
// Errors carry an errdefs class that errors.Is finds: not found only when
// S3 says so (NoSuchKey, a 404); 403 is ErrPermissionDenied, 503 SlowDown
// and broken connections ErrUnavailable, and so on. Requests are retried by
// the SDK's standard retryer (3 attempts unless configured).
//
// # Prune
//
// Prune removes blobs that no config under the manifests prefix names and
// that are older than a grace period (by default the larger of 1h and the
// touch refresh age, 24h), since an export writes its blobs before its
// config and reuses younger ones unrefreshed. See Prune for what it cannot
// see.
//
// # Credentials, region, endpoint
//
// From the AWS SDK's standard chain (environment, shared config and
// credentials files, IMDS), unless WithCredentials, WithRegion and
// WithEndpoint give them. An endpoint whose host is an IP address or
// "localhost" is addressed path-style (http://host/bucket/key);
// WithPathStyle decides for others.
package s3
