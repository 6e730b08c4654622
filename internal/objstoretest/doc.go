// Package objstoretest is what the real-server tests of the object
// stores (s3/s3test against the Versity gateway, azblob/azbtest against
// Azurite) share: helpers that export and read back generated caches, a
// counting and fault-injecting proxy to put in front of a server (with
// fault plans and a blob the server keeps refusing), the start of a
// server process, the command line tool's end-to-end tests (RunCLI,
// RunCLIPrune), and a conformance suite (Run) that every object store
// passes against its server. It is for tests only.
package objstoretest
