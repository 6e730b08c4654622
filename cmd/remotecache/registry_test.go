package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
)

// memRegistry is just enough of the OCI distribution API, in memory, for
// the tool's registry locations to be tested end to end: blob uploads (POST
// then PUT), blob and manifest reads and checks, manifests pushed by tag.
// Package registry itself is tested against the reference registry server
// (registry/regtest); this checks the command line's use of it.
type memRegistry struct {
	mu        sync.Mutex
	blobs     map[digest.Digest][]byte
	types     map[digest.Digest]string // media types of manifests
	tags      map[string]digest.Digest // "repo:tag"
	uploads   int
	manifests int // manifests pushed
	// blobDelay is how long each read of a blob (not a check) waits
	// before it is answered, to make a copy from it slow.
	blobDelay atomic.Int64
	// refused are blobs that every request for is answered 403.
	refused map[digest.Digest]bool
}

func startRegistry(t *testing.T) (host string, reg *memRegistry) {
	reg = &memRegistry{blobs: map[digest.Digest][]byte{}, types: map[digest.Digest]string{}, tags: map[string]digest.Digest{}, refused: map[digest.Digest]bool{}}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), reg
}

func (reg *memRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
		time.Sleep(time.Duration(reg.blobDelay.Load()))
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == "" {
		return // the API version check
	}
	var repo, kind, ref string
	for _, k := range []string{"/blobs/uploads/", "/blobs/", "/manifests/"} {
		if i := strings.LastIndex(p, k); i > 0 {
			repo, kind, ref = p[:i], k, p[i+len(k):]
			break
		}
	}
	switch {
	case reg.refused[digest.Digest(ref)]:
		http.Error(w, `{"errors":[{"code":"DENIED","message":"refused"}]}`, http.StatusForbidden)
	case kind == "/blobs/uploads/" && r.Method == http.MethodPost:
		reg.uploads++
		w.Header().Set("Location", fmt.Sprintf("/v2/%s/blobs/uploads/%d", repo, reg.uploads))
		w.WriteHeader(http.StatusAccepted)
	case kind == "/blobs/uploads/" && r.Method == http.MethodPut:
		dt, err := io.ReadAll(r.Body)
		want := digest.Digest(r.URL.Query().Get("digest"))
		if err != nil || digest.FromBytes(dt) != want {
			http.Error(w, `{"errors":[{"code":"DIGEST_INVALID"}]}`, http.StatusBadRequest)
			return
		}
		reg.blobs[want] = dt
		w.Header().Set("Docker-Content-Digest", want.String())
		w.WriteHeader(http.StatusCreated)
	case kind == "/manifests/" && r.Method == http.MethodPut:
		dt, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d := digest.FromBytes(dt)
		reg.blobs[d], reg.types[d] = dt, r.Header.Get("Content-Type")
		if digest.Digest(ref).Validate() != nil {
			reg.tags[repo+":"+ref] = d
		}
		reg.manifests++
		w.Header().Set("Docker-Content-Digest", d.String())
		w.WriteHeader(http.StatusCreated)
	case (kind == "/blobs/" || kind == "/manifests/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		d := digest.Digest(ref)
		if kind == "/manifests/" && d.Validate() != nil {
			d = reg.tags[repo+":"+ref]
		}
		dt, ok := reg.blobs[d]
		if !ok {
			http.Error(w, `{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Docker-Content-Digest", d.String())
		if kind == "/manifests/" {
			w.Header().Set("Content-Type", reg.types[d])
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(dt))
	default:
		http.Error(w, `{"errors":[{"code":"UNSUPPORTED"}]}`, http.StatusMethodNotAllowed)
	}
}

// stats says how many blobs the registry has, how many uploads were
// started and how many manifests were pushed.
func (reg *memRegistry) stats() (blobs, uploads, manifests int) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return len(reg.blobs), reg.uploads, reg.manifests
}

func TestRegistry(t *testing.T) {
	host, reg := startRegistry(t)
	src, small := cachetest.Fixture(t), exportSmall(t)
	v1 := "registry:" + host + "/team/cache:v1"

	r := ok(t, "copy", "oci:"+src, v1)
	if want := v1 + " " + cachetest.FixtureManifest + " image-manifest\n"; r.Stdout != want {
		t.Errorf("copy to the registry printed %q, want %q", r.Stdout, want)
	}
	if blobs, _, manifests := reg.stats(); manifests != 1 || blobs != cachetest.FixtureBlobs+2 {
		t.Errorf("registry has %d blobs, %d manifests pushed", blobs, manifests)
	}
	rep := inspectJSON(t, v1)
	if rep.Manifest.Digest != cachetest.FixtureManifest || rep.Counts != (counts{Records: cachetest.FixtureRecords, Layers: cachetest.FixtureLayers, Blobs: cachetest.FixtureBlobs}) {
		t.Errorf("inspect %s: %s %+v", v1, rep.Manifest.Digest, rep.Counts)
	}
	ok(t, "verify", v1)

	// Again: the blobs and the tag are there; nothing is pushed.
	_, before, _ := reg.stats()
	if r := ok(t, "copy", "oci:"+src, v1); !strings.Contains(r.Stderr, ": skipped") {
		t.Errorf("second copy skipped nothing:\n%s", r.Stderr)
	}
	if _, after, _ := reg.stats(); after != before {
		t.Errorf("second copy: %d uploads", after-before)
	}

	// Registry to a layout, and to another repository in another form.
	dst := "oci:" + filepath.Join(t.TempDir(), "from-registry")
	ok(t, "copy", "--quiet", v1, dst, "--format", "manifest-list")
	ok(t, "verify", dst)
	idx := "registry:" + host + "/other:idx"
	ok(t, "copy", "--quiet", dst, idx, "--format", "oci-index")
	if got := inspectJSON(t, idx); got.Format != "oci-index" || got.Counts.Records != cachetest.FixtureRecords {
		t.Errorf("inspect %s: %s %+v", idx, got.Format, got.Counts)
	}

	merged := "registry:" + host + "/merged"
	ok(t, "merge", "--quiet", v1, "oci:"+small, merged)
	if got := inspectJSON(t, merged).Counts; got.Records != cachetest.FixtureRecords+2 || got.Blobs != cachetest.FixtureBlobs+2 {
		t.Errorf("merged: %+v", got)
	}

	clitest.FailsWith(t, runTool(t, "inspect", "--quiet", "registry:"+host+"/team/cache:nope"), "not found")
	r = runTool(t, "prune", "--quiet", v1)
	if r.Code != 2 || !strings.Contains(r.Stderr, "only OCI layout directories, s3: and azblob: locations can be pruned") {
		t.Errorf("prune of a registry: exit %d\n%s", r.Code, r.Stderr)
	}
}

// remove removes a blob, as a registry's garbage collection may.
func (reg *memRegistry) remove(d digest.Digest) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	delete(reg.blobs, d)
}

// refuse makes every request for a blob answered 403.
func (reg *memRegistry) refuse(d digest.Digest) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.refused[d] = true
}

// tagged returns the manifest a tag names.
func (reg *memRegistry) tagged(repoTag string) digest.Digest {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.tags[repoTag]
}
