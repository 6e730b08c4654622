package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	clog "github.com/containerd/log"

	"github.com/buildcache/remotecache/internal/cputime"
	"github.com/buildcache/remotecache/internal/objstoretest"
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
	return cputime.Of(g.pid)
}

// startVersity starts a gateway on a directory of its own, stopped when
// the test ends. args are more global flags.
func startVersity(t testing.TB, args ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for range 3 {
		addr, err := objstoretest.FreePort()
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
		if err := objstoretest.WaitListening("versitygw", addr, exited, 20*time.Second); err != nil {
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
	proxy  *objstoretest.Proxy
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
// what the posix backend reports as its LastModified. An object gone (a
// prune may have removed it since the listing) is left alone.
func (e *env) age(t testing.TB, key string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	if err := os.Chtimes(e.path(key), old, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// startProxy starts a counting proxy in front of the gateway at target
// (objstoretest.Proxy), which names S3's requests: "GET", "HEAD", "PUT",
// "COPY" (a PUT with a copy source), "POST", "DELETE", "LIST"; keys are
// the paths after the bucket.
func startProxy(t testing.TB, target string) *objstoretest.Proxy {
	return objstoretest.StartProxy(t, target, objstoretest.ProxyConfig{
		Op:      opOf,
		Key:     keyOf,
		Uploads: []string{"PUT"},
		Writes:  []string{"PUT", "COPY", "POST", "DELETE"},
		IsBlob: func(key string) bool {
			return strings.Contains(key, "sha256:") && !strings.Contains(key, "manifests/")
		},
	})
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

// keyOf is the key of the object a request is about: its path after
// /BUCKET/.
func keyOf(r *http.Request) string {
	if _, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok {
		return key
	}
	return ""
}

// slowDown answers as S3 does when it throttles.
func slowDown(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>`)
	}
}
