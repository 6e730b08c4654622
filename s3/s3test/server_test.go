package s3test

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	clog "github.com/containerd/log"

	s3store "github.com/buildcache/remotecache/s3"
)

// The root account of every gateway the tests start.
const (
	accessKey = "remotecache"
	secretKey = "remotecache-secret"
	region    = "us-east-1"
)

// versitygw is the path of the gateway's binary, built by TestMain.
var versitygw string

func TestMain(m *testing.M) {
	// No test may use the AWS settings of whoever runs it, or wait for
	// an instance metadata service.
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// containerd's local store warns about fsverity on every temp dir.
	_ = clog.SetLevel("error")
	path, err := buildVersity()
	if err != nil {
		log.Fatalf("building versitygw: %v", err)
	}
	versitygw = path
	os.Exit(m.Run())
}

// buildVersity builds the gateway at the version go.mod names (a tool of
// this module) and returns the path of the binary, which the Go build
// cache keeps: the first build takes a minute or two, later ones seconds.
// The binary is built without the race detector, whatever the tests run
// with: its races are not ours to find.
func buildVersity() (string, error) {
	var last error
	for range 2 {
		// The first run of a build may print a path in its own work
		// directory, gone when it exits; the second finds the cache.
		out, err := exec.Command("go", "tool", "-n", "versitygw").Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%v: %s", err, ee.Stderr)
			}
			return "", err
		}
		f := strings.Fields(string(out))
		if len(f) == 0 {
			return "", fmt.Errorf("go tool -n versitygw printed nothing")
		}
		path := f[len(f)-1]
		if _, err := os.Stat(path); err == nil {
			return path, nil
		} else {
			last = err
		}
	}
	return "", last
}

// gateway is a Versity S3 gateway with the posix backend, listening on
// 127.0.0.1.
type gateway struct {
	URL string // http://127.0.0.1:PORT
	Dir string // the posix root: one directory per bucket
	pid int
}

// cpu returns the user and system CPU time the gateway has used, from
// /proc (Linux; 0 elsewhere), in clock ticks of 10 ms.
func (g *gateway) cpu() time.Duration {
	dt, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", g.pid))
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

// startVersity starts a gateway on a directory of its own, stopped when
// the test ends. args are more global flags.
func startVersity(t testing.TB, args ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		argv := append([]string{"--port", addr, "--access", accessKey, "--secret", secretKey, "--quiet", "--keep-alive"}, args...)
		argv = append(argv, "posix", dir)
		cmd := exec.Command(versitygw, argv...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if err := waitListening(addr, exited); err != nil {
			cmd.Process.Kill()
			<-exited
			lastErr = fmt.Errorf("%v; output:\n%s", err, out.String())
			continue // the port may have been taken meanwhile
		}
		t.Cleanup(func() {
			// It waits for open connections to close; none of its
			// state matters once the test is over.
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
		return &gateway{URL: "http://" + addr, Dir: dir, pid: cmd.Process.Pid}
	}
	t.Fatalf("starting versitygw: %v", lastErr)
	return nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("versitygw not listening on %s after 20s", addr)
}

// client returns a plain SDK client of the gateway (or of a proxy in
// front of it) at endpoint, for the tests' own requests; its connections
// are closed when the test ends.
func client(t testing.TB, endpoint string) *s3.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:   &http.Client{Transport: tr},
	})
}

// env is one gateway with one bucket, behind a counting proxy.
type env struct {
	gw     *gateway
	proxy  *proxy
	bucket string
	admin  *s3.Client // straight to the gateway, not counted
}

// newEnv starts a gateway with a bucket and a proxy in front of it.
func newEnv(t testing.TB, args ...string) *env {
	t.Helper()
	gw := startVersity(t, args...)
	e := &env{gw: gw, bucket: "cache", admin: client(t, gw.URL)}
	if _, err := e.admin.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &e.bucket}); err != nil {
		t.Fatalf("creating bucket: %v", err)
	}
	e.proxy = startProxy(t, gw.URL)
	return e
}

// store opens the bucket through the proxy.
func (e *env) store(t testing.TB, opts ...s3store.Option) *s3store.Store {
	t.Helper()
	base := []s3store.Option{
		s3store.WithEndpoint(e.proxy.URL),
		s3store.WithRegion(region),
		s3store.WithCredentials(accessKey, secretKey, ""),
	}
	s, err := s3store.New(context.Background(), e.bucket, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// path is the file of an object in the gateway's posix backend.
func (e *env) path(key string) string {
	return filepath.Join(e.gw.Dir, e.bucket, filepath.FromSlash(key))
}

// keys lists every object key of the bucket.
func (e *env) keys(t testing.TB) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(e.admin, &s3.ListObjectsV2Input{Bucket: &e.bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// object reads an object straight from the gateway.
func (e *env) object(t testing.TB, key string) []byte {
	t.Helper()
	out, err := e.admin.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.bucket, Key: &key})
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	defer out.Body.Close()
	dt, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// age sets the modification time of an object's file back by d, which is
// what the posix backend reports as its LastModified.
func (e *env) age(t testing.TB, key string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	if err := os.Chtimes(e.path(key), old, old); err != nil {
		t.Fatal(err)
	}
}

// proxy is a reverse proxy in front of a gateway that counts requests by
// operation and the bytes uploaded, and lets a fault function answer a
// request itself.
type proxy struct {
	URL string

	mu       sync.Mutex
	ops      map[string]int // by op(): "GET", "HEAD", "PUT", "COPY", "POST", "DELETE", "LIST"
	keys     map[string]int // by "OP key"
	fault    func(w http.ResponseWriter, r *http.Request, n int) bool
	attempts map[string]int // by "METHOD path?query": tries of one request

	uploaded     atomic.Int64 // body bytes of PUT requests that are not copies
	blobUploaded atomic.Int64 // the same, for blob keys only
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// The client signed the Host it sent: keep it.
			r.Out.Host = r.In.Host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p := &proxy{ops: map[string]int{}, keys: map[string]int{}, attempts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			op := opOf(r)
			key := strings.TrimPrefix(r.URL.Path, "/")
			if i := strings.IndexByte(key, '/'); i >= 0 {
				key = key[i+1:]
			} else {
				key = ""
			}
			p.mu.Lock()
			p.ops[op]++
			p.keys[op+" "+key]++
			id := r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery
			p.attempts[id]++
			n := p.attempts[id]
			fault := p.fault
			p.mu.Unlock()
			if op == "PUT" {
				ctr := []*atomic.Int64{&p.uploaded}
				if strings.Contains(key, "sha256:") && !strings.Contains(key, "manifests/") {
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

// opOf names what a request does.
func opOf(r *http.Request) string {
	switch {
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		return "COPY"
	case r.Method == http.MethodGet && (r.URL.Query().Has("list-type") || strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0):
		return "LIST"
	}
	return r.Method
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

// countKey returns the requests of op on key so far.
func (p *proxy) countKey(op, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[op+" "+key]
}

// writes returns the requests so far that can change the bucket.
func (p *proxy) writes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ops["PUT"] + p.ops["COPY"] + p.ops["POST"] + p.ops["DELETE"]
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
	p.ops, p.keys = map[string]int{}, map[string]int{}
	p.uploaded.Store(0)
	p.blobUploaded.Store(0)
}

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

// slowDown answers as S3 does when it throttles.
func slowDown(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>`)
	}
}

// resetAfter reads up to n bytes of the request's body, then resets the
// connection: the client sees its upload break off.
func resetAfter(w http.ResponseWriter, r *http.Request, n int64) {
	io.CopyN(io.Discard, r.Body, n)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST, not FIN
	}
	conn.Close()
}
