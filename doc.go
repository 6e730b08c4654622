// Package remotecache exports a build cache graph to a content store in the
// remote cache format that BuildKit reads and writes, and reads it back.
//
// A build engine adds the records of its cache graph to an [Exporter],
// dependencies first, and calls [Exporter.Finalize]: the layer blobs, one
// cache config blob and one manifest are written to any containerd
// [content.Ingester] — an OCI image layout directory, a registry, a
// containerd content store. The next build imports the manifest and gets
// its graph back. BuildKit can import what this package exports, and the
// other way round.
//
// # The cache config
//
// The config blob (media type [CacheConfigMediaTypeV0],
// "application/vnd.buildkit.cacheconfig.v0") is a [CacheConfig]: a JSON
// object with two lists.
//
//	{
//	  "layers":  [{"blob": "sha256:…", "parent": -1},
//	              {"blob": "sha256:…"}],
//	  "records": [{"digest": "sha256:…",
//	               "layers": [{"layer": 1, "createdAt": "2025-01-02T03:04:05Z"}],
//	               "inputs": [[{"selector": "/src", "link": 0}]]}]
//	}
//
// Each entry of "layers" is one blob on top of the layer chain that "parent"
// names: -1 for a base layer; a parent of 0 is left out, as BuildKit does.
// Each entry of "records" is one cache key: its digest; its results, each
// the index of the top layer of a chain, loaded with all its parents
// ("layers"; "chains" lists layer indexes loaded in order without parents,
// read on import and written only by inline-style exporters); and its
// inputs: for each input slot, the records it can be reached from ("link",
// an index into "records"), each through an optional selector.
//
// The config is a pure function of the graph: records are sorted by
// digest and structure, never by when they were added. For the same Add
// calls the bytes are BuildKit's wherever BuildKit's own output is
// deterministic. See [CacheChains.Marshal].
//
// The same Add calls in another valid order give the same graph, and so
// the same bytes, with one exception that follows from the Add rules (and
// that BuildKit shares): when one Add matches two records of which one is
// above the other, the order decides whether they merge. With A, X = (D
// from A) and C = (E from X), adding Y = (D from C) and then N = (D from
// [A, C]) merges X and Y into one record (3 in all); adding N first links
// it to X only, and Y stays a record of its own (4). The determinism tests
// cover graphs with repeated Adds, newer results and merges of records of
// which neither is above the other, fed in three orders; docs/design.md §4
// gives the rules and the tests that pin them.
//
// # The manifest
//
// The manifest points at the config and the layers, in one of three forms
// chosen with [WithManifestFormat]:
//
//   - [FormatImageManifest], the default: an OCI image manifest whose
//     config is the cache config and whose layers are the layer blobs. The
//     only form that ECR, GAR, Quay and Harbor accept.
//   - [FormatOCIIndex]: an OCI image index listing the layers, then the
//     config.
//   - [FormatManifestList]: a Docker manifest list, like the index but with
//     layer media types in their Docker form.
//
// Layer descriptors keep their annotations ("containerd.io/uncompressed"
// for the diffID, "buildkit/createdat"). [Import] reads a cache back from any
// of the three forms, told apart by the blob itself, and rebuilds the graph
// into any [Target]; [Parse] does the same from the config's bytes.
//
// # Export order
//
// [Exporter.Finalize] writes every layer blob first (concurrently, each
// digest once, skipping blobs the store already has), then the config blob,
// then the manifest, last: a reader that sees the manifest sees everything
// it names. Sizes and digests are checked while copying, and a failed write
// leaves nothing half-written behind. Finalize returns the manifest's
// descriptor as JSON under [ExporterResponseManifestDesc] ("cache.manifest").
//
// With [WithCompression], layers are converted to gzip, zstd or
// uncompressed before the first write (each distinct blob once, in
// parallel, its diffID checked), and the config and manifest name the
// converted blobs, as they would had the engine made them.
//
// # On disk
//
// Exported to a directory in OCI image layout (the ocilayout package; what
// BuildKit's type=local cache import reads), a cache looks like this:
//
//	DIR/
//	  oci-layout            {"imageLayoutVersion":"1.0.0"}
//	  index.json            an OCI image index: one descriptor per tag, the
//	                        tag in the "org.opencontainers.image.ref.name"
//	                        annotation, pointing at a cache manifest
//	  blobs/
//	    sha256/
//	      <hex>             every blob, named by its digest: layers,
//	                        cache configs, manifests
//
// Blobs are written to a temporary file, verified, synced and renamed into
// place, so a file under blobs/ is always whole; index.json is replaced the
// same way, and a tag moves only after everything it names is there.
//
// # A stored cache's lifecycle
//
// Three operations work on a stored cache's decoded config ([ReadManifest],
// [ReadConfig]) and the sizes of its blobs ([Manifest.BlobSizes]):
// [Trim] cuts it to a size or age budget, oldest results first, keeping
// every step whose result stays whole, so it still hits the cache; [Diff]
// compares two caches and finds the steps whose cache key changed first
// (its divergence points); [Repair] rewrites a cache whose store lost
// blobs without the results that named them. [ParseConfig] gives a
// trimmed config to an [Exporter], with [Manifest.Descriptors] for its
// blobs. See docs/design.md §6.1.
//
// # Usage
//
// The main flow, with the error checks left out (see the example of
// [NewExporter] for all of it):
//
//	exp, err := remotecache.NewExporter(store) // any content.Ingester
//
//	// Dependencies first; Add returns the handle that links point at.
//	base, _, err := exp.Add(baseKey, nil, []remotecache.Result{{
//		CreatedAt: created,
//		Remote:    &remotecache.Remote{Descriptors: baseLayers, Provider: blobs},
//	}})
//	_, _, err = exp.Add(runKey, [][]remotecache.Link{{{Src: base}}}, []remotecache.Result{{
//		CreatedAt: created,
//		Remote:    &remotecache.Remote{Descriptors: runLayers, Provider: blobs},
//	}})
//
//	// Layers, then the config, then the manifest.
//	resp, err := exp.Finalize(ctx)
//	manifest, ok, err := remotecache.ResponseManifest(resp) // ok: something was written
//
// Records whose digest starts with "random:" are not exportable and are
// left out. Progress is reported to a sink set with [WithProgress]; it never
// slows the copy down.
package remotecache
