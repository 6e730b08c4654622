package regtest

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/buildcache/remotecache/internal/objstoretest"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func TestMain(m *testing.M) {
	// The registry logs through logrus, every 404 as an error: the tests
	// say what went wrong themselves.
	logrus.SetOutput(io.Discard)
	// No test may read the Docker config of the user who runs it.
	dir, err := os.MkdirTemp("", "regtest-docker-config-")
	if err != nil {
		log.Fatal(err)
	}
	os.Setenv("DOCKER_CONFIG", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a registry, or a proxy in front of one, listening on
// 127.0.0.1.
type server struct {
	// Host is the host:port to use in references.
	Host string
	// uploaded counts the body bytes the registry read from POST, PUT and
	// PATCH requests to /v2/…/blobs/uploads/…: the blob bytes sent to it.
	uploaded atomic.Int64
	// downloaded counts the body bytes of the registry's answers to GET
	// requests for blobs: the blob bytes read from it.
	downloaded atomic.Int64
	// requests counts requests by "METHOD kind" (kind: blob, upload,
	// mount, manifest, other; see requestKind).
	mu       sync.Mutex
	requests map[string]int
}

// serve serves h on a new port of 127.0.0.1 until the test ends.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startRegistry starts a registry with in-memory storage. With users, it
// asks for basic auth (htpasswd) of one of them.
func startRegistry(t testing.TB, users map[string]string) *server {
	t.Helper()
	return startRegistryWith(t, users, nil)
}

// startRegistryWith starts a registry as startRegistry does, with its
// configuration changed by configure (if not nil) before it starts.
func startRegistryWith(t testing.TB, users map[string]string, configure func(*configuration.Configuration)) *server {
	t.Helper()
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"inmemory":    configuration.Parameters{},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	cfg.HTTP.Secret = "regtest"
	cfg.Log.Level = "error"
	// An index or manifest list of the cache lists blobs, not manifests:
	// the registry must not insist that they be manifests it has (the
	// reference registry does by default, and so refuses BuildKit's
	// index-form caches too).
	cfg.Validation.Manifests.Indexes.Platforms = "none"
	if users != nil {
		var lines []string
		for u, p := range users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, u+":"+string(h))
		}
		path := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "regtest", "path": path}}
	}
	if configure != nil {
		configure(cfg)
	}
	app := handlers.NewApp(context.Background(), cfg)
	t.Cleanup(func() { app.Shutdown() })
	s := &server{requests: map[string]int{}}
	s.Host = serve(t, s.count(app))
	return s
}

// count wraps the registry's handler to count requests and the blob
// bytes uploaded and downloaded.
func (s *server) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := requestKind(r)
		s.mu.Lock()
		s.requests[r.Method+" "+kind]++
		s.mu.Unlock()
		switch {
		case (kind == "upload" || kind == "mount") && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch):
			r.Body = objstoretest.CountBody(r.Body, &s.uploaded)
		case kind == "blob" && r.Method == http.MethodGet:
			w = &countingWriter{ResponseWriter: w, n: &s.downloaded}
		}
		h.ServeHTTP(w, r)
	})
}

// countingWriter counts the body bytes of a response.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *server) Requests(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[key]
}

// Counts returns the requests so far by "METHOD kind".
func (s *server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.requests)
}

// CountsSince returns the requests since Counts returned before, by
// "METHOD kind"; kinds with none are left out.
func (s *server) CountsSince(before map[string]int) map[string]int {
	now := s.Counts()
	for k, v := range before {
		if now[k] -= v; now[k] == 0 {
			delete(now, k)
		}
	}
	return now
}

// deleteBlob deletes the blob d from the repository repo, straight
// through the registry's API, as one that lost it would: the registry
// must have been started with deletes enabled.
func (s *server) deleteBlob(t testing.TB, repo string, d digest.Digest) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, "http://"+s.Host+"/v2/"+repo+"/blobs/"+d.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE blob %s: %s", d, resp.Status)
	}
}

// requestKind is what a request is about: "mount" for a POST that asks to
// mount a blob from another repository, "upload" for the other requests of
// uploads, "blob", "manifest", or "other" (/v2/, a token).
func requestKind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && r.URL.Query().Get("mount") != "":
		return "mount"
	case strings.Contains(p, "/blobs/uploads/"):
		return "upload"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	case strings.Contains(p, "/manifests/"):
		return "manifest"
	}
	return "other"
}

// faultProxy is a reverse proxy in front of a registry that lets fault
// decide, for each request, whether to answer it itself. n is the number
// of requests so far (this one included) with the same key: for an
// upload, the blob digest or the manifest reference, so n counts the
// attempts to upload it.
type faultProxy struct {
	Host string

	mu       sync.Mutex
	attempts map[string]int
	last     map[string]time.Time
	// gaps are, per key, the times from a 429 answer to the next request
	// with the same key.
	gaps  map[string][]time.Duration
	fault func(w http.ResponseWriter, r *http.Request, key string, n int) bool
}

// startFaultProxy starts a proxy to the registry at target. fault, if not
// nil, may answer a request itself; modify, if not nil, may change the
// registry's responses.
func startFaultProxy(t testing.TB, target string, fault func(w http.ResponseWriter, r *http.Request, key string, n int) bool, modify func(*http.Response) error) *faultProxy {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = modify
	fp := &faultProxy{attempts: map[string]int{}, last: map[string]time.Time{}, gaps: map[string][]time.Duration{}, fault: fault}
	fp.Host = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := faultKey(r)
		fp.mu.Lock()
		fp.attempts[key]++
		n := fp.attempts[key]
		if t429, ok := fp.last[key]; ok {
			fp.gaps[key] = append(fp.gaps[key], time.Since(t429))
			delete(fp.last, key)
		}
		fp.mu.Unlock()
		if fault != nil && fault(w, r, key, n) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	return fp
}

// faultKey is "PUT blob sha256:…" for the request that completes a blob
// upload, "PUT manifest <ref>" for a manifest push, and "METHOD path" for
// other requests.
func faultKey(r *http.Request) string {
	if r.Method == http.MethodPut {
		if d := r.URL.Query().Get("digest"); d != "" {
			return "PUT blob " + d
		}
		if i := strings.Index(r.URL.Path, "/manifests/"); i >= 0 {
			return "PUT manifest " + r.URL.Path[i+len("/manifests/"):]
		}
	}
	return r.Method + " " + r.URL.Path
}

// tooMany answers 429 with Retry-After and notes the time.
func (fp *faultProxy) tooMany(w http.ResponseWriter, key string, retryAfter int) {
	fp.mu.Lock()
	fp.last[key] = time.Now()
	fp.mu.Unlock()
	w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
	writeRegistryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "slow down")
}

// Attempts returns the attempts per key whose key starts with prefix.
func (fp *faultProxy) Attempts(prefix string) map[string]int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	out := map[string]int{}
	for k, n := range fp.attempts {
		if strings.HasPrefix(k, prefix) {
			out[k] = n
		}
	}
	return out
}

// Total returns the requests so far whose key starts with prefix.
func (fp *faultProxy) Total(prefix string) int {
	n := 0
	for _, a := range fp.Attempts(prefix) {
		n += a
	}
	return n
}

// resetMidBody reads half of the request body, then drops the connection
// with a TCP reset.
func resetMidBody(w http.ResponseWriter, r *http.Request) {
	objstoretest.ResetAfter(w, r, max(r.ContentLength/2, 0))
}

func writeRegistryError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, message)
}

// cutBody is a response body that fails with a connection reset after n
// bytes, which makes the reverse proxy abort the response mid-body.
type cutBody struct {
	io.ReadCloser
	n int64
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, fmt.Errorf("regtest: connection cut mid-body")
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.ReadCloser.Read(p)
	b.n -= int64(n)
	return n, err
}

// startLatencyProxy starts a reverse proxy to the registry at target that
// holds each request for delay before it forwards it, and holds a new
// connection's first read for delay too: a registry one round trip of
// delay away, whose every request costs that round trip and whose every
// new connection one more (its TCP handshake; plain HTTP, so no TLS
// handshake). Bytes cost nothing more than on loopback. It returns the
// proxy's host:port.
func startLatencyProxy(t testing.TB, target string, delay time.Duration) string {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.FlushInterval = -1 // stream bodies as they come
	// Connections to the registry are free and many: the proxy is not
	// what limits the client.
	rp.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if delay > 0 {
				time.Sleep(delay)
			}
			rp.ServeHTTP(w, r)
		}),
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(&slowListener{Listener: ln, delay: delay})
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// slowListener hands out connections whose first read waits delay.
type slowListener struct {
	net.Listener
	delay time.Duration
}

func (l *slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.delay <= 0 {
		return c, err
	}
	return &slowConn{Conn: c, delay: l.delay}, nil
}

type slowConn struct {
	net.Conn
	delay time.Duration
	once  sync.Once
}

func (c *slowConn) Read(p []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.delay) })
	return c.Conn.Read(p)
}
