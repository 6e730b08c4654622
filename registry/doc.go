// Package registry makes a repository of an OCI registry a content store
// for remotecache: an Exporter writes a cache through it, Import reads one
// back from it. It speaks the OCI distribution API through containerd's
// resolver, pusher and fetcher (core/remotes/docker).
//
//	r, err := registry.New("registry.example.com/team/cache:main")
//	exp, err := remotecache.NewExporter(r)
//	… exp.Add(…) …
//	_, err = exp.Finalize(ctx) // blobs, then the manifest under :main
//
//	desc, err := r.Resolve(ctx) // the manifest :main points at
//	err = remotecache.Import(ctx, r, desc, target)
//
// # Writing
//
// *Remote is a content.Ingester. Blobs are pushed by digest; a blob the
// repository already has is not sent again: Info lets the Exporter skip
// it. Across a network the Remote sends no request it can avoid:
//
//   - Before an export (remotecache.ExportPreparer) it resolves the tag
//     once and reads the manifest there: the blobs it names need no HEAD
//     request, and a manifest with the digest of the one there is not
//     written again while the tag still points at it. An unchanged cache
//     is three requests.
//   - One existence check per blob at most: Info's HEAD (or what the
//     Remote knows), never another in Writer.
//   - A blob whose descriptor names another repository of the same
//     registry as its source (containerd.io/distribution.source.<host>,
//     which Info gives and BuildKit writes) is mounted, not uploaded, and
//     reported skipped, "mounted from HOST/REPO". Where the registry
//     refuses (202), the blob is uploaded into the session it opened.
//   - A blob up to 1 MiB is uploaded in one request where the registry
//     completes an upload in the POST that carries it, else in a POST and
//     a PUT; a larger one streams into its upload as it is written.
//   - An export copies DefaultConcurrency (16) blobs at once
//     (remotecache.ConcurrencyAdvisor), unless told otherwise.
//
// A manifest (any manifest or index media type) is pushed under the
// reference's tag, so the tag moves when, and only when, the Exporter
// writes the manifest, which it does last. A digest reference pushes the
// manifest by digest. If the registry refuses the manifest (it lost a
// blob the Remote took as there), the Remote forgets what it knew, so that
// the Exporter's checks that follow ask the registry.
//
// # Reading
//
// *Remote is a content.Provider and content.InfoProvider. ReaderAt reads
// blobs and manifests; Info says whether the repository has a blob, and
// how large it is, with the repository as the blob's distribution source
// label, so that a copy into another repository of the registry mounts it.
// A manifest read through the Remote teaches it the blobs it names
// (KnownInfo, remotecache.KnownInfoProvider): a copy from here takes them
// as there and reads each with one GET, no HEAD before it; one gone after
// all is that GET's not-found, and the export drops what needs it. Info
// itself still asks, so that inspect, verify and repair see what the
// repository has now.
//
// # Hosts, TLS and credentials
//
// Loopback hosts (localhost, 127.0.0.0/8, ::1) are reached over plain
// HTTP, others over HTTPS unless WithPlainHTTP(true). Credentials come from
// the Docker config and its credential helpers, or from WithCredentials or
// WithCredentialsFunc; basic auth and bearer tokens are both answered.
//
// # Retries
//
// A registry that answers 408 Request Timeout, 429 Too Many Requests or a
// 5xx status (not 501), or whose connection breaks (reset, closed early,
// timed out), is asked again, up to WithRetries attempts in all, after a
// backoff that doubles from WithBackoff's minimum up to its maximum with
// random jitter; a cancelled context stops at once. Other 4xx statuses fail
// at once. A Retry-After header on a 429 or 503 is honoured by the HTTP
// transport, which holds the response back that long, so whichever retry
// comes next, containerd's own (it retries a 429 at once) or ours, comes no
// sooner; a registry that asks for more than a minute (a rate limit that
// resets in hours) fails the operation at once with a *RetryLaterError.
//
// Retries are of whole operations, not of HTTP requests: a tag resolution,
// a blob check, a blob read (resumed where it broke off, with a range
// request), and above all an upload. An upload streams its body once, so it
// cannot be sent again at the HTTP level; the writer keeps the bytes it is
// given (in memory up to 1 MiB, beyond in a file of WithSpoolDir) while
// they stream to the registry, and if the upload fails it starts a new
// upload of the kept bytes at Commit. The first attempt costs no latency:
// bytes go to the registry as the Exporter writes them.
//
// # Errors
//
// An error status of the registry is an *Error with the request, the
// status and the errors the registry's body lists ("… 500 Internal Server
// Error: UNKNOWN: disk on fire"); its errdefs class follows the status, so
// errdefs.IsNotFound and friends work. A HEAD request has no body: when one
// fails, the same address is asked with GET to get the registry's message.
// Each distinct error of the body is said once (a registry lists one
// MANIFEST_BLOB_UNKNOWN per blob). A registry that refuses an index or
// manifest list as invalid, as the reference registry by default, ECR,
// GAR and Quay refuse an index-form cache, gets an error with a Hint to
// use the image-manifest form.
package registry
