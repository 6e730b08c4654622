package azbtest

import (
	"bytes"
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
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// The account of every Azurite: its one built-in account, with the
// well-known key of Azurite's README (no secret).
const (
	account    = "devstoreaccount1"
	accountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteVersion is the version the tests are made for, and the one CI
// installs.
const azuriteVersion = "3.37.0"

// installHint says how to get Azurite where the tests look for it.
const installHint = "Azurite (the blob service of the azurite npm package) is needed: " +
	"install it at the repository's root with `npm install --prefix .cache/azurite azurite@" + azuriteVersion + "` " +
	"(bash .ci/run does), or set AZURITE_BIN to its azurite-blob, or AZURITE_DIR to the directory holding node_modules/.bin/azurite-blob"

func TestMain(m *testing.M) {
	// No test may use the Azure settings of whoever runs it.
	for _, k := range []string{azbstore.EnvConnectionString, "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
		"AZURE_FEDERATED_TOKEN_FILE", "BUILDKIT_AZURE_STORAGE_ACCOUNT_URL", "BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME",
		"BUILDKIT_AZURE_STORAGE_CONTAINER", "BUILDKIT_AZURE_STORAGE_PREFIX"} {
		os.Unsetenv(k)
	}
	cachetest.QuietLogs()
	code := m.Run()
	stopAzurite()
	os.Exit(code)
}

// findAzurite returns the azurite-blob to run: $AZURITE_BIN, else
// node_modules/.bin/azurite-blob under $AZURITE_DIR, else under the
// repository's .cache/azurite.
func findAzurite() (string, error) {
	if p := os.Getenv("AZURITE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AZURITE_BIN=%s: %v", p, err)
		}
		return p, nil
	}
	dir := os.Getenv("AZURITE_DIR")
	if dir == "" {
		root, err := cachetest.Root()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache", "azurite")
	}
	p := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no %s", p)
	}
	return p, nil
}

// azurite is Azurite's blob service, listening on 127.0.0.1, one for the
// package: each test has containers of its own.
type azurite struct {
	URL string // http://127.0.0.1:PORT, the service (the account is its first path element)
	bin string
	dir string // --location
	cmd *exec.Cmd

	exited chan struct{}
	out    *bytes.Buffer
}

var (
	server     *azurite
	serverErr  error
	serverOnce sync.Once
)

// startAzurite returns the package's Azurite, started at its first call.
// Without Azurite, the test fails under CI (with $CI set) and is skipped
// elsewhere, saying how to install it.
func startAzurite(t testing.TB) *azurite {
	t.Helper()
	serverOnce.Do(func() {
		bin, err := findAzurite()
		if err != nil {
			serverErr = fmt.Errorf("%v. %s", err, installHint)
			return
		}
		server, serverErr = launch(bin)
	})
	if serverErr != nil {
		if os.Getenv("CI") == "" && strings.Contains(serverErr.Error(), installHint) {
			t.Skip(serverErr)
		}
		t.Fatal(serverErr)
	}
	select {
	case <-server.exited:
		t.Fatalf("Azurite exited; its output:\n%s", server.output())
	default:
	}
	return server
}

// launch starts Azurite on a free port of 127.0.0.1 and a temporary
// directory, and waits until it answers.
func launch(bin string) (*azurite, error) {
	dir, err := os.MkdirTemp("", "azbtest-azurite-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		// --disableTelemetry: without it, Azurite does not exit on
		// SIGTERM. --silent: no access log.
		cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", port, "--location", dir,
			"--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent")
		a := &azurite{URL: "http://" + addr, bin: bin, dir: dir, cmd: cmd, exited: make(chan struct{}), out: &bytes.Buffer{}}
		w := &lockedWriter{w: a.out}
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("starting %s: %v", bin, err)
		}
		go func() { cmd.Wait(); close(a.exited) }()
		if err := waitListening(addr, a.exited); err != nil {
			cmd.Process.Kill()
			<-a.exited
			lastErr = fmt.Errorf("%v; output:\n%s", err, a.output())
			continue // the port may have been taken meanwhile
		}
		return a, nil
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("starting Azurite: %v", lastErr)
}

// stopAzurite stops the package's Azurite, if it was started, with
// SIGTERM (a kill if it does not exit within 10s), and removes its files.
func stopAzurite() {
	if server == nil {
		return
	}
	server.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-server.exited:
	case <-time.After(10 * time.Second):
		server.cmd.Process.Kill()
		<-server.exited
	}
	os.RemoveAll(server.dir)
}

// output returns what Azurite printed so far.
func (a *azurite) output() string {
	return a.out.String()
}

// cpu returns the user and system CPU time Azurite (a node process) has
// used, from /proc (Linux; 0 elsewhere), in clock ticks of 10 ms.
func (a *azurite) cpu() time.Duration {
	dt, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(dt[bytes.LastIndexByte(dt, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// lockedWriter is a writer for the two output streams of a process.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// freePort returns an address of 127.0.0.1 with a port free just now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitListening waits until something listens at addr, or the process
// exits, or a minute passes.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("azurite-blob exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("azurite-blob not listening on %s after 60s", addr)
}

// connectionString is the connection string of the account at service
// (Azurite's URL, or a proxy's).
func connectionString(service string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + account + ";AccountKey=" + accountKey + ";BlobEndpoint=" + service + "/" + account + ";"
}

// clientOptions are the SDK options of every client of the tests: quick
// retries (the SDK's first wait is 800ms), and a transport of the test's
// own, whose connections are closed when it ends.
func clientOptions(t testing.TB, retries int32) *azblob.ClientOptions {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry:     policy.RetryOptions{MaxRetries: retries, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond},
		Transport: &http.Client{Transport: tr},
	}}
}

// client returns a plain SDK client of the account at service, for the
// tests' own requests.
func client(t testing.TB, service string) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(connectionString(service), clientOptions(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// env is a container of its own in the package's Azurite, behind a
// counting proxy of the test's own.
type env struct {
	az        *azurite
	proxy     *proxy
	container string
	admin     *container.Client // straight to Azurite, not counted
}

var containerSeq atomic.Int64

// containerName makes a container name of t's name, unique in the
// package's Azurite.
func containerName(t testing.TB) string {
	name := strings.ToLower(t.Name())
	name = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(name, "-")
	name = fmt.Sprintf("t%d-%s", containerSeq.Add(1), name)
	if len(name) > 60 {
		name = name[:60]
	}
	return strings.TrimRight(name, "-")
}

// newEnv makes a container and a proxy in front of Azurite; with
// noContainer, only names the container, which does not exist.
func newEnv(t testing.TB, noContainer ...bool) *env {
	t.Helper()
	az := startAzurite(t)
	e := &env{az: az, container: containerName(t)}
	e.admin = client(t, az.URL).ServiceClient().NewContainerClient(e.container)
	if len(noContainer) == 0 || !noContainer[0] {
		if _, err := e.admin.Create(context.Background(), nil); err != nil {
			t.Fatalf("creating container: %v", err)
		}
	}
	e.proxy = startProxy(t, az.URL)
	return e
}

// store opens the container through the proxy with a connection string.
func (e *env) store(t testing.TB, opts ...azbstore.Option) *azbstore.Store {
	t.Helper()
	base := []azbstore.Option{
		azbstore.WithConnectionString(connectionString(e.proxy.URL)),
		azbstore.WithClientOptions(clientOptions(t, 3)),
	}
	s, err := azbstore.New(context.Background(), e.container, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// names lists every blob name of the container.
func (e *env) names(t testing.TB) []string {
	t.Helper()
	var names []string
	p := e.admin.NewListBlobsFlatPager(nil)
	for p.More() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}

// blob reads a blob straight from Azurite.
func (e *env) blob(t testing.TB, name string) []byte {
	t.Helper()
	resp, err := e.admin.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	defer resp.Body.Close()
	dt, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// proxy is a reverse proxy in front of Azurite that counts requests by
// operation and the bytes uploaded, lets a fault function answer a
// request itself, and can make blobs look older than they are.
//
// Azurite keeps the times of blobs in its own database, which a test
// cannot set back (as the s3 tests set back the mtime of a file of the
// gateway), so the proxy ages a blob: age(name, d) makes the responses of
// reads of its properties (HEAD, GET) and of listings say it was last
// modified d ago, until a request that changes the blob (an upload, a
// metadata write, a delete) succeeds, after which Azurite's own time shows
// again, as on a blob written anew.
type proxy struct {
	URL string

	mu       sync.Mutex
	ops      map[string]int // by opOf
	names    map[string]int // by "OP name"
	fault    func(w http.ResponseWriter, r *http.Request, n int) bool
	attempts map[string]int // by "METHOD path?query": tries of one request
	aged     map[string]time.Time

	rp http.Handler // the reverse proxy itself, without counts or faults

	uploaded     atomic.Int64 // body bytes of Put Blob and Put Block requests
	blobUploaded atomic.Int64 // the same, for blobs under blobs/ only
}

// writeOps are the operations that change the container.
var writeOps = []string{"PUT", "BLOCK", "BLOCKLIST", "METADATA", "PROPERTIES", "COPY", "CREATE", "DELETE"}

// startProxy starts a proxy in front of target, stopped when the test
// ends.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	p := &proxy{ops: map[string]int{}, names: map[string]int{}, attempts: map[string]int{}, aged: map[string]time.Time{}}
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// Shared key signatures do not cover the host; keep it.
			r.Out.Host = r.In.Host
		},
		ModifyResponse: p.modify,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	p.rp = rp
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			op, name := opOf(r), blobName(r)
			p.mu.Lock()
			p.ops[op]++
			p.names[op+" "+name]++
			id := r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery
			p.attempts[id]++
			n := p.attempts[id]
			fault := p.fault
			p.mu.Unlock()
			if op == "PUT" || op == "BLOCK" {
				ctr := []*atomic.Int64{&p.uploaded}
				if strings.HasPrefix(name, "blobs/") || strings.Contains(name, "/blobs/") {
					ctr = append(ctr, &p.blobUploaded)
				}
				r.Body = &countingBody{ReadCloser: r.Body, n: ctr}
			}
			if fault != nil && fault(w, r, n) {
				return
			}
			rp.ServeHTTP(w, r)
		})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.URL = "http://" + ln.Addr().String()
	return p
}

// handler returns the reverse proxy to Azurite, for faults that let a
// request through and then break its response.
func (p *proxy) handler() http.Handler { return p.rp }

// opOf names what a request does.
func opOf(r *http.Request) string {
	q := r.URL.Query()
	comp := q.Get("comp")
	switch r.Method {
	case http.MethodHead:
		if q.Has("restype") {
			return "CONTAINER"
		}
		return "HEAD"
	case http.MethodGet:
		if comp == "list" {
			return "LIST"
		}
		if q.Has("restype") {
			return "CONTAINER"
		}
		return "GET"
	case http.MethodPut:
		switch {
		case comp == "block":
			return "BLOCK"
		case comp == "blocklist":
			return "BLOCKLIST"
		case comp == "metadata":
			return "METADATA"
		case comp == "properties":
			return "PROPERTIES"
		case r.Header.Get("x-ms-copy-source") != "":
			return "COPY"
		case q.Get("restype") == "container" && comp == "":
			return "CREATE"
		}
		return "PUT"
	}
	return r.Method
}

// blobName is the name of the blob a request is about: its path after
// /ACCOUNT/CONTAINER/ ("" for requests about the container).
func blobName(r *http.Request) string {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// age makes the blob name look last modified d ago (see proxy).
func (p *proxy) age(name string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Azurite's times have seconds only.
	p.aged[name] = time.Now().Add(-d).Truncate(time.Second)
}

var listedBlob = regexp.MustCompile(`(?s)<Blob>.*?</Blob>`)
var listedName = regexp.MustCompile(`<Name>([^<]*)</Name>`)
var listedTime = regexp.MustCompile(`<Last-Modified>[^<]*</Last-Modified>`)

// modify applies the ages to a response of Azurite's.
func (p *proxy) modify(resp *http.Response) error {
	op, name := opOf(resp.Request), blobName(resp.Request)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.aged) == 0 {
		return nil
	}
	switch {
	case slices.Contains(writeOps, op):
		if resp.StatusCode/100 == 2 {
			delete(p.aged, name)
		}
	case op == "HEAD" || op == "GET":
		if t, ok := p.aged[name]; ok && resp.StatusCode/100 == 2 {
			resp.Header.Set("Last-Modified", t.UTC().Format(http.TimeFormat))
		}
	case op == "LIST" && resp.StatusCode == http.StatusOK:
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = listedBlob.ReplaceAllFunc(body, func(b []byte) []byte {
			m := listedName.FindSubmatch(b)
			if m == nil {
				return b
			}
			t, ok := p.aged[string(m[1])]
			if !ok {
				return b
			}
			return listedTime.ReplaceAll(b, []byte("<Last-Modified>"+t.UTC().Format(http.TimeFormat)+"</Last-Modified>"))
		})
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return nil
}

// setFault makes fault see every request first, with n the number of
// times this request (method, path and query) has come; nil: none.
func (p *proxy) setFault(fault func(w http.ResponseWriter, r *http.Request, n int) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = fault
	p.attempts = map[string]int{}
}

// count returns the requests of op so far.
func (p *proxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ops[op]
}

// countName returns the requests of op on the blob name so far.
func (p *proxy) countName(op, name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.names[op+" "+name]
}

// writes returns the requests so far that can change the container.
func (p *proxy) writes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, op := range writeOps {
		n += p.ops[op]
	}
	return n
}

// summary lists the requests so far by operation: "GET 3, HEAD 2".
func (p *proxy) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ops := slices.Sorted(maps.Keys(p.ops))
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %d", op, p.ops[op])
	}
	return strings.Join(parts, ", ")
}

// reset forgets the counts.
func (p *proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops, p.names = map[string]int{}, map[string]int{}
	p.uploaded.Store(0)
	p.blobUploaded.Store(0)
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

// serverBusy answers as Azure does when it throttles.
func serverBusy(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("x-ms-error-code", "ServerBusy")
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy.</Message></Error>`)
	}
}

// resetAfter reads up to n bytes of the request's body, then resets the
// connection: the client sees its upload break off.
func resetAfter(w http.ResponseWriter, r *http.Request, n int64) {
	io.CopyN(io.Discard, r.Body, n)
	reset(w)
}

// reset closes the connection of w with a RST.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST, not FIN
	}
	conn.Close()
}

// resetWriter passes a response on until n bytes of its body are out,
// then resets the connection: the client sees the body break off.
type resetWriter struct {
	http.ResponseWriter
	n    int64
	done bool
}

func (w *resetWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, io.ErrClosedPipe
	}
	if int64(len(p)) < w.n {
		w.n -= int64(len(p))
		return w.ResponseWriter.Write(p)
	}
	m, _ := w.ResponseWriter.Write(p[:w.n])
	http.NewResponseController(w.ResponseWriter).Flush()
	w.done = true
	conn, buf, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
	}
	return m, io.ErrClosedPipe
}

func (w *resetWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
