// Package regtest holds the tests of package registry against a real
// registry: the reference implementation, github.com/distribution/
// distribution/v3, started in-process on 127.0.0.1 with in-memory storage,
// alone, behind htpasswd basic auth, or behind a reverse proxy that
// injects faults. It is a module of its own so that the registry server and
// its dependencies never become dependencies of the library.
//
// Run it with `go test ./...` in this directory; it starts all it needs.
package regtest
