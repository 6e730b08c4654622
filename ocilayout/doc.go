// Package ocilayout is an OCI image layout directory used as a content
// store with tags: the embedded default store of remotecache, readable by
// BuildKit's `--import-cache type=local,src=DIR` and by any OCI layout tool.
//
// # Layout
//
//	DIR/oci-layout           {"imageLayoutVersion":"1.0.0"}
//	DIR/index.json           OCI image index; one entry per tag, named by the
//	                         org.opencontainers.image.ref.name annotation
//	DIR/index.json.lock      file lock serialising index.json updates (the
//	                         same file BuildKit locks)
//	DIR/blobs/<alg>/<hex>    content, named by digest
//	DIR/blobs/<alg>/.tmp-<hex>-<random>
//	                         a write in progress (or a killed one's leftover:
//	                         Prune removes it)
//	DIR/.remotecache.lock    held shared by every open Store, exclusive by
//	                         Prune
//	DIR/.remotecache.prune.lock
//	                         held exclusive by Prune while it runs
//
// A layout written by BuildKit's type=local exporter (or by this package
// before it wrote blobs itself) may also have DIR/ingest/, containerd's
// writes in progress; Prune empties it.
//
// A Store writes each blob straight to a temp file of its own beside the
// blob's final name, hashing it on the way, and on Commit checks its size
// and digest, syncs it and renames it into place: a blob is whole under
// its name or not there, a killed export leaves only temp files behind,
// and two processes writing one blob each write their own file (the
// second to commit finds the blob there, or renames the same bytes over
// it). The directory blobs/<alg> is synced by Tag, before index.json
// names the blob, not at every Commit: a crash can lose the name of a
// blob that no tag names yet, never of one that a tag names. Every read
// stats and opens blobs/<alg>/<hex> after validating the digest; a Store
// opened WithReadOnly writes nothing at all. containerd's local content
// store is not used: for every blob it makes an ingest directory with four
// small files beside the data (ref, startedat, updatedat, total), each
// written with O_SYNC, and syncs blobs/<alg> at every Commit, which made
// an export into a fresh layout 2–3 times as slow as the blob writes
// alone (BENCHMARKS.md); and it makes a probe file in DIR when opened.
//
// index.json is replaced, never rewritten in place: a temp file in DIR is
// written, synced and renamed over it, under the lock, so readers see the
// old index or the new one, never a torn one. DIR is synced after the
// rename, except on Windows, which cannot sync a directory. Windows also
// refuses to rename over a file that another process has open (Go opens
// files without FILE_SHARE_DELETE), so there a write of index.json can
// fail while another process is reading it.
//
// # Errors
//
// Every error the package returns has a class of containerd/errdefs that
// errors.Is finds (errdefs.IsNotFound and the like): its own (a missing
// tag or blob is errdefs.ErrNotFound, a write to a read-only Store
// errdefs.ErrFailedPrecondition, a second Prune errdefs.ErrUnavailable),
// containerd's, the context's (errdefs.IsCanceled,
// errdefs.IsDeadlineExceeded), or, for an error of the file system, one by
// its cause: fs.ErrNotExist is errdefs.ErrNotFound, fs.ErrPermission
// errdefs.ErrPermissionDenied, anything else errdefs.ErrUnknown. The
// error's text and what it wraps are kept.
//
// # Concurrency
//
// Any number of processes may export into one directory and tag at once: a
// writer of index.json waits for the lock (bounded by its context) instead
// of failing. Every open Store holds a shared lock on .remotecache.lock
// until Close; Prune takes it exclusively, so it waits for every export in
// progress through another Store (in any process) to close that Store,
// and an export never loses a blob it is about to tag.
//
// Only exports through this package take that lock. BuildKit's
// `--export-cache type=local` exporter, and other OCI layout tools, do
// not: Prune does not wait for them, and while one of them writes into
// the directory a Prune can remove blobs it has written and not yet
// tagged.
//
// The locks are file locks, taken through gofrs/flock: flock(2) on Unix,
// LockFileEx on Windows. Both belong to an open file (a handle), and two
// open files of one process conflict as those of two processes do, so
// Prune cannot take .remotecache.lock exclusively beside its own Store's
// shared lock, which would keep it waiting forever: it converts that lock.
// Neither system converts a lock safely in place (Linux drops the shared
// lock first, Windows does not convert at all), so Prune drops its shared
// lock and then waits for the exclusive one: while it waits (and if it
// gives up) its Store holds no lock on .remotecache.lock. Another Prune
// would then find nothing holding it off and remove that Store's untagged
// blobs. So before it converts, Prune takes .remotecache.prune.lock
// exclusively, and releases it only after its shared lock is back: only
// the holder of .remotecache.prune.lock ever takes .remotecache.lock
// exclusively, so no other Prune can run while the shared lock is down,
// and taking it back never waits. A second Prune finds
// .remotecache.prune.lock taken and fails at once: the Prune holding it
// waits for the second Prune's Store to close, so waiting in turn would
// deadlock both.
package ocilayout
