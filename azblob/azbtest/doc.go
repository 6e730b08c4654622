// Package azbtest tests the azblob store against Azurite, Azure's storage
// emulator, started by the tests on 127.0.0.1, and beside BuildKit's own
// azblob cache exporter and importer. It is a module of its own, so that
// BuildKit and the test servers stay out of the azblob module; it has no
// code but its tests.
//
// The tests find Azurite's blob service, azurite-blob, at $AZURITE_BIN,
// else under $AZURITE_DIR/node_modules/.bin, else under the repository's
// .cache/azurite/node_modules/.bin, where
//
//	npm install --prefix .cache/azurite azurite@3.37.0
//
// (run at the repository's root, as bash .ci/run does) puts it. Without
// it they are skipped, or fail when $CI is set.
package azbtest
