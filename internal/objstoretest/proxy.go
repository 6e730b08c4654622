package objstoretest

import (
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ProxyConfig tells a Proxy what the requests of its server's API do.
type ProxyConfig struct {
	// Op names what a request does: "GET", "HEAD", "PUT" (an upload of
	// a whole object), "DELETE", "LIST", and the server's own.
	Op func(r *http.Request) string
	// Key returns the key of the object a request is about ("" for
	// none).
	Key func(r *http.Request) string
	// Uploads are the ops whose request bodies are uploaded bytes.
	Uploads []string
	// Writes are the ops that can change the bucket or container.
	Writes []string
	// IsBlob tells whether a key is a blob's: its uploads count in
	// BlobUploaded too.
	IsBlob func(key string) bool
	// ModifyResponse, if not nil, may change the server's responses.
	ModifyResponse func(*http.Response) error
}

// Proxy is a reverse proxy in front of a server that counts requests by
// operation and the bytes uploaded, and lets a fault function answer a
// request itself.
type Proxy struct {
	// URL is where the proxy listens.
	URL string
	// Uploaded counts the body bytes of upload requests,
	// BlobUploaded those of blobs only.
	Uploaded, BlobUploaded atomic.Int64

	cfg ProxyConfig
	rp  http.Handler

	mu       sync.Mutex
	ops      map[string]int // by Op
	keys     map[string]int // by "OP key"
	fault    func(w http.ResponseWriter, r *http.Request, n int) bool
	attempts map[string]int // by "METHOD path?query": tries of one request
}

// StartProxy starts a proxy in front of target, stopped when the test
// ends.
func StartProxy(t testing.TB, target string, cfg ProxyConfig) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	p := &Proxy{cfg: cfg, ops: map[string]int{}, keys: map[string]int{}, attempts: map[string]int{}}
	p.rp = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// The client may have signed the Host it sent: keep it.
			r.Out.Host = r.In.Host
		},
		ModifyResponse: cfg.ModifyResponse,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(p.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.URL = "http://" + ln.Addr().String()
	return p
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	op, key := p.cfg.Op(r), p.cfg.Key(r)
	p.mu.Lock()
	p.ops[op]++
	p.keys[op+" "+key]++
	id := r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery
	p.attempts[id]++
	n := p.attempts[id]
	fault := p.fault
	p.mu.Unlock()
	if slices.Contains(p.cfg.Uploads, op) {
		ctr := []*atomic.Int64{&p.Uploaded}
		if p.cfg.IsBlob(key) {
			ctr = append(ctr, &p.BlobUploaded)
		}
		r.Body = CountBody(r.Body, ctr...)
	}
	if fault != nil && fault(w, r, n) {
		return
	}
	p.rp.ServeHTTP(w, r)
}

// Handler returns the reverse proxy to the server, without counts or
// faults, for faults that let a request through and then break its
// response.
func (p *Proxy) Handler() http.Handler { return p.rp }

// SetFault makes fault see every request first, with n the number of
// times this request (method, path and query) has come; nil: none.
func (p *Proxy) SetFault(fault func(w http.ResponseWriter, r *http.Request, n int) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = fault
	p.attempts = map[string]int{}
}

// Count returns the requests of op so far.
func (p *Proxy) Count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ops[op]
}

// CountKey returns the requests of op on key so far.
func (p *Proxy) CountKey(op, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[op+" "+key]
}

// Writes returns the requests so far that can change the bucket or
// container.
func (p *Proxy) Writes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, op := range p.cfg.Writes {
		n += p.ops[op]
	}
	return n
}

// Summary lists the requests so far by operation: "GET 3, HEAD 2".
func (p *Proxy) Summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return FormatCounts(p.ops)
}

// FormatCounts writes counts by name as "GET 3, HEAD 2", sorted by name.
func FormatCounts(m map[string]int) string {
	names := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// Reset forgets the counts.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops, p.keys = map[string]int{}, map[string]int{}
	p.Uploaded.Store(0)
	p.BlobUploaded.Store(0)
}

// CountBody returns body, adding the bytes read from it to each of the
// counters: what a test server or proxy wraps a request's body in to count
// the bytes uploaded.
func CountBody(body io.ReadCloser, counters ...*atomic.Int64) io.ReadCloser {
	return &countingBody{ReadCloser: body, n: counters}
}

// countingBody adds the bytes read from a request body to counters.
type countingBody struct {
	io.ReadCloser
	n []*atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	for _, c := range b.n {
		c.Add(int64(n))
	}
	return n, err
}

// ResetAfter reads up to n bytes of the request's body, then resets the
// connection: the client sees its upload break off.
func ResetAfter(w http.ResponseWriter, r *http.Request, n int64) {
	io.CopyN(io.Discard, r.Body, n)
	ResetConn(w)
}

// ResetConn closes the connection of w with a RST.
func ResetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST, not FIN
	}
	conn.Close()
}
