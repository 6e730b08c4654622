// Package regtest holds the tests of package registry against a real
// registry: the reference implementation, github.com/distribution/
// distribution/v3, started in-process on 127.0.0.1 with in-memory storage,
// alone, behind htpasswd basic auth, or behind a reverse proxy that
// injects faults; and go-containerregistry's registry (the one crane is
// tested against), which completes an upload with a single POST where
// distribution's does not. It is a module of its own so that the registry
// servers and their dependencies never become dependencies of the library.
//
// Its side-by-side benchmark drives BuildKit's exporter with the BuildKit
// replay of github.com/buildcache/remotecache/interop/sidebyside, the one
// the interop module's tests and benchmarks use: this module requires the
// interop module, replaced by the local tree, as it does the root module.
//
// Run it with `go test ./...` in this directory; it starts all it needs.
package regtest
