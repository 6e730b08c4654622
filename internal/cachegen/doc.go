// Package cachegen generates random but reproducible cache graphs that look
// like the cache of multi-stage Dockerfile builds, for property tests and
// benchmarks.
//
// A Graph is a list of operations, each one a call a build engine would make
// to Target.Add: a cache key digest, input slots of links to earlier
// operations (with optional selectors) and results (layer chains, base
// first). The graph, its descriptors and its blob bytes are a pure function
// of the seed and the Options. Nothing here depends on the remotecache types
// except Replay and NewReplayer (replay.go); NewReplayerOf feeds the same
// graph to any target with that Add, BuildKit's too.
//
// What a generated graph contains:
//   - base images: records without inputs whose result is a chain of 1–4
//     layers, shared by many stages (a few bases are very popular);
//   - build contexts: records without inputs and without results;
//   - builds of 1–5 stages, each FROM a base image or an earlier stage, with
//     1–8 steps: RUN (one input slot), COPY from the context and COPY --from
//     an earlier stage (two input slots, the second linked through a
//     "sha256:…" content selector, sometimes with a second link);
//   - common RUN commands and stage templates, so that one digest is reached
//     from different parents (records told apart only by their links, at any
//     depth), and identical steps on the same base (one record, several
//     results);
//   - layers: every step adds one layer to its stage's chain; about 10% of
//     new layers reuse an existing blob, so one blob sits on top of different
//     parent chains (and sometimes twice in one chain);
//   - about 60% of records with a result, CreatedAt timestamps with
//     nanoseconds, some equal to each other;
//   - optionally: operations added again (same digest and links, with the
//     same, a newer or no result), operations that merge two records,
//     extra links, "random:" digests, blobs the Provider does not have.
//
// Lattice (lattice.go) makes another kind of graph, for benchmarks: the deep
// lattice, fed once or twice; Shapes (shapes.go) names the graph shapes the
// benchmarks measure at each of ShapeSizes.
//
// A record's results never share a CreatedAt unless they have the same
// blobs, so its best result does not depend on the insertion order.
package cachegen
