package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	pkgerrors "github.com/pkg/errors"
)

func mustNew(t *testing.T, ref string, opts ...Option) *Remote {
	t.Helper()
	r, err := New(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestScheme(t *testing.T) {
	for _, tc := range []struct {
		ref    string
		plain  bool
		scheme string
		host   string
	}{
		{"127.0.0.1:5000/c", false, "http", "127.0.0.1:5000"},
		{"127.1.2.3/c", false, "http", "127.1.2.3"},
		{"localhost:5000/c", false, "http", "localhost:5000"},
		{"[::1]:5000/c", false, "http", "[::1]:5000"},
		{"registry.example.com/c", false, "https", "registry.example.com"},
		{"registry.example.com:5000/c", true, "http", "registry.example.com:5000"},
		{"c", false, "https", "registry-1.docker.io"},
	} {
		r := mustNew(t, tc.ref, WithPlainHTTP(tc.plain))
		if r.host.Scheme != tc.scheme || r.host.Host != tc.host {
			t.Errorf("%s (plain %v): %s://%s, want %s://%s", tc.ref, tc.plain, r.host.Scheme, r.host.Host, tc.scheme, tc.host)
		}
	}
	r := mustNew(t, "registry.example.com/team/cache:v1")
	if got, want := r.blobURL("sha256:x"), "https://registry.example.com/v2/team/cache/blobs/sha256:x"; got != want {
		t.Errorf("blobURL = %s, want %s", got, want)
	}
}

func TestCredentials(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no config file

	r := mustNew(t, "registry.example.com/c")
	if u, s, err := r.credentials("registry.example.com"); u != "" || s != "" || err != nil {
		t.Errorf("no config: %q %q %v, want anonymous", u, s, err)
	}

	r = mustNew(t, "registry.example.com/c", WithCredentials("alice", "s3cret"))
	if u, s, err := r.credentials("registry.example.com"); u != "alice" || s != "s3cret" || err != nil {
		t.Errorf("WithCredentials: %q %q %v", u, s, err)
	}
	if u, s, _ := r.credentials("storage.example.net"); u != "" || s != "" {
		t.Errorf("credentials given to another host: %q %q", u, s)
	}

	r = mustNew(t, "registry.example.com/c", WithCredentialsFunc(func(host string) (string, string, error) {
		return "", "", fmt.Errorf("no credentials for %s", host)
	}))
	if _, _, err := r.credentials("registry.example.com"); err == nil || !strings.Contains(err.Error(), "registry.example.com") {
		t.Errorf("WithCredentialsFunc: error %v", err)
	}

	// The Docker config: an auths entry, and a credential helper.
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	cfg := fmt.Sprintf(`{"auths":{"registry.example.com":{"auth":%q},"https://index.docker.io/v1/":{"auth":%q}},"credHelpers":{"helped.example.com":"regtest"}}`,
		base64.StdEncoding.EncodeToString([]byte("bob:hunter2")), base64.StdEncoding.EncodeToString([]byte("hubuser:hubpass")))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustNew(t, "registry.example.com/c")
	if u, s, err := r.credentials("registry.example.com"); u != "bob" || s != "hunter2" || err != nil {
		t.Errorf("Docker config auths: %q %q %v", u, s, err)
	}
	r = mustNew(t, "library/cache")
	if u, s, err := r.credentials("registry-1.docker.io"); u != "hubuser" || s != "hubpass" || err != nil {
		t.Errorf("Docker config, Docker Hub: %q %q %v", u, s, err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	bin := t.TempDir()
	helper := "#!/bin/sh\nread host\necho \"{\\\"Username\\\":\\\"helper\\\",\\\"Secret\\\":\\\"for-$host\\\"}\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-regtest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	r = mustNew(t, "helped.example.com/c")
	if u, s, err := r.credentials("helped.example.com"); u != "helper" || s != "for-helped.example.com" || err != nil {
		t.Errorf("credential helper: %q %q %v", u, s, err)
	}
}

func TestBackoff(t *testing.T) {
	r := mustNew(t, "127.0.0.1/c", WithBackoff(100*time.Millisecond, time.Second))
	for n := 1; n <= 70; n++ {
		full := time.Second
		if n <= 4 {
			full = 100 * time.Millisecond << (n - 1)
		}
		for range 20 {
			if d := r.backoff(n); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

func TestRetryStops(t *testing.T) {
	r := mustNew(t, "127.0.0.1/c", WithRetries(3), WithBackoff(time.Millisecond, time.Millisecond))
	ctx := context.Background()
	status := func(code int) error {
		return remoteerrors.ErrUnexpectedStatus{StatusCode: code, Status: http.StatusText(code), RequestMethod: "GET", RequestURL: "http://h/v2/"}
	}
	for _, tc := range []struct {
		err   error
		tries int
	}{
		{status(500), 3},
		{status(503), 3},
		{status(429), 3},
		{status(408), 3},
		{status(501), 1},
		{status(400), 1},
		{status(404), 1},
		{errdefs.ErrNotFound, 1},
		{&url.Error{Op: "Put", URL: "http://h", Err: &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.ECONNRESET)}}, 3},
		{fmt.Errorf("failed to do request: %w", io.ErrUnexpectedEOF), 3},
		{fmt.Errorf("write: %w", net.ErrClosed), 3},
		{errors.New("something else"), 1},
	} {
		tries := 0
		err := r.retry(ctx, func(context.Context) error { tries++; return tc.err })
		if tries != tc.tries || err == nil {
			t.Errorf("%v: %d tries (err %v), want %d", tc.err, tries, err, tc.tries)
		}
		if tc.tries > 1 && !strings.Contains(err.Error(), "after 3 attempts") {
			t.Errorf("%v: error does not say how many attempts: %v", tc.err, err)
		}
	}

	// Success on the second try.
	tries := 0
	if err := r.retry(ctx, func(context.Context) error {
		if tries++; tries < 2 {
			return status(502)
		}
		return nil
	}); err != nil || tries != 2 {
		t.Errorf("%d tries, %v", tries, err)
	}

	// A cancelled context ends the wait: the hour-long backoff is cut
	// short, and no second attempt is made.
	r = mustNew(t, "127.0.0.1/c", WithBackoff(time.Hour, time.Hour))
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	tries = 0
	if err := r.retry(cctx, func(context.Context) error { tries++; return status(503) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled: %v", err)
	}
	if tries != 1 {
		t.Errorf("cancelled: %d tries, want 1", tries)
	}
}

func TestUploadRetryable(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		want bool
	}{
		{404, `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}`, true},
		{404, `{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}`, true},
		{416, `{"errors":[{"code":"RANGE_INVALID","message":"invalid content range"}]}`, true},
		{404, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`, false},
		{400, `{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}`, false},
		{503, ``, true},
	} {
		err := remoteerrors.ErrUnexpectedStatus{StatusCode: tc.code, Body: []byte(tc.body), RequestMethod: "PUT", RequestURL: "http://h/v2/c/blobs/uploads/u"}
		if got := uploadRetryable(err); got != tc.want {
			t.Errorf("%d %s: uploadRetryable = %v", tc.code, tc.body, got)
		}
	}
	if !uploadRetryable(pkgerrors.Wrap(content.ErrReset, "copy")) {
		t.Error("content.ErrReset is not retryable")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second, true},
		{now.Add(-3 * time.Second).Format(http.TimeFormat), 0, true},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRetryAfterTransport(t *testing.T) {
	answer := func(code int, retryAfter string) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{}
			if retryAfter != "" {
				h.Set("Retry-After", retryAfter)
			}
			return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
		})
	}
	ctx := context.Background()
	// done is a context that is over before the request: a response held
	// back for any time at all would fail with its error, so a response
	// that comes back through it was not held.
	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	for _, tc := range []struct {
		code       int
		retryAfter string
		hold       time.Duration
	}{
		{429, "1", time.Second},
		{503, "1", time.Second},
		{429, "", 0},
		{500, "1", 0},
		{200, "1", 0},
	} {
		tr := &retryAfterTransport{base: answer(tc.code, tc.retryAfter)}
		rctx := ctx
		if tc.hold == 0 {
			rctx = done
		}
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, "http://127.0.0.1/v2/c/blobs/uploads/", nil)
		start := time.Now()
		resp, err := tr.RoundTrip(req)
		d := time.Since(start)
		if err != nil || resp.StatusCode != tc.code {
			t.Fatalf("%d with Retry-After %q: %v %v (held back?)", tc.code, tc.retryAfter, resp, err)
		}
		if d < tc.hold {
			t.Errorf("%d with Retry-After %q: held %v, want %v", tc.code, tc.retryAfter, d, tc.hold)
		}
	}

	// A wait over a minute is not waited for: the operation fails at once
	// (were it held, the context that is over would end it with its own
	// error).
	tr := &retryAfterTransport{base: answer(429, "7200")}
	req, _ := http.NewRequestWithContext(done, http.MethodGet, "http://127.0.0.1/v2/", nil)
	_, err := tr.RoundTrip(req)
	var later *RetryLaterError
	if !errors.As(err, &later) || later.After != 2*time.Hour {
		t.Errorf("Retry-After: 7200: %v", err)
	}
	if retryable(pkgerrors.Wrap(err, "push")) || !errdefs.IsResourceExhausted(err) {
		t.Errorf("Retry-After: 7200: retryable or wrong class: %v", err)
	}
	if !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "retry after 2h0m0s") {
		t.Errorf("Retry-After: 7200: %v", err)
	}

	// The hold ends with the request's context.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	tr = &retryAfterTransport{base: answer(429, "60")}
	req, _ = http.NewRequestWithContext(cctx, http.MethodGet, "http://127.0.0.1/v2/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled hold: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	body := `{"errors":[{"code":"UNKNOWN","message":"disk on fire"},{"code":"DENIED","message":"and no"}]}`
	err := classify(pkgerrors.Wrap(errors.Join(remoteerrors.ErrUnexpectedStatus{
		Status: "500 Internal Server Error", StatusCode: 500, Body: []byte(body),
		RequestMethod: "PUT", RequestURL: "http://127.0.0.1:5000/v2/c/blobs/uploads/u?_state=secret&digest=sha256:x",
	}, docker.ErrInvalidAuthorization), "failed"))
	want := "PUT http://127.0.0.1:5000/v2/c/blobs/uploads/u: 500 Internal Server Error: UNKNOWN: disk on fire; DENIED: and no"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	if !errdefs.IsUnavailable(err) {
		t.Errorf("500 is not of class unavailable")
	}

	for code, is := range map[int]func(error) bool{
		400: errdefs.IsInvalidArgument, 401: errdefs.IsUnauthorized, 403: errdefs.IsPermissionDenied,
		404: errdefs.IsNotFound, 409: errdefs.IsConflict, 429: errdefs.IsResourceExhausted,
		501: errdefs.IsNotImplemented, 502: errdefs.IsUnavailable,
	} {
		if e := newError("GET", "http://h/v2/", code, "", nil); !is(e) {
			t.Errorf("%d: wrong class", code)
		}
	}

	e := newError("GET", "http://h/v2/", 502, "502 Bad Gateway", []byte("<html>\n<b>bad gateway</b></html>"))
	if got := e.Error(); got != "GET http://h/v2/: 502 Bad Gateway: <html> <b>bad gateway</b></html>" {
		t.Errorf("non-JSON body: %s", got)
	}
	e = newError("GET", "http://h/v2/", 502, "", bytes.Repeat([]byte("x"), 1000))
	if len(e.Body) > maxBodyText+len("…") {
		t.Errorf("body kept whole: %d bytes", len(e.Body))
	}

	// A registry lists one error per blob a manifest names: each distinct
	// code and message is said once; Errors keeps them all.
	e = newError("PUT", "http://h/v2/c/manifests/v1", 400, "400 Bad Request", []byte(`{"errors":[`+
		`{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:a"},`+
		`{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:b"},`+
		`{"code":"MANIFEST_INVALID","message":"manifest invalid"},`+
		`{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:c"},`+
		`{"code":"MANIFEST_BLOB_UNKNOWN","message":"other words"}]}`))
	if got, want := e.Error(), "PUT http://h/v2/c/manifests/v1: 400 Bad Request: MANIFEST_BLOB_UNKNOWN: blob unknown to registry; MANIFEST_INVALID: manifest invalid; MANIFEST_BLOB_UNKNOWN: other words"; got != want {
		t.Errorf("repeated errors:\n got %s\nwant %s", got, want)
	}
	if len(e.Errors) != 5 {
		t.Errorf("Errors keeps %d of 5", len(e.Errors))
	}

	auth := classify(pkgerrors.Wrap(docker.ErrInvalidAuthorization, "push access denied"))
	if !errdefs.IsUnauthorized(auth) || !errors.Is(auth, docker.ErrInvalidAuthorization) || auth.Error() != "push access denied: authorization failed" {
		t.Errorf("refused authorization: %v", auth)
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	s := &spool{dir: dir}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
	var all []byte
	for range 6 { // 1.5 MiB: over the memory part
		if _, err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
		all = append(all, chunk...)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("%d files in the spool directory, want 1", len(files))
	}
	got, err := io.ReadAll(s.reader())
	if err != nil || !bytes.Equal(got, all) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(all))
	}
	if err := s.Truncate(); err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("abc"))
	if got, _ := io.ReadAll(s.reader()); string(got) != "abc" {
		t.Fatalf("after truncate: %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("spool file left behind")
	}

	small := &spool{dir: dir}
	small.Write([]byte("hello"))
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatal("a small spool went to disk")
	}
	if got, _ := io.ReadAll(small.reader()); string(got) != "hello" {
		t.Fatalf("small spool: %q", got)
	}
	small.Close()
}

func TestHintIndexRefused(t *testing.T) {
	const (
		index    = "application/vnd.oci.image.index.v1+json"
		list     = "application/vnd.docker.distribution.manifest.list.v2+json"
		manifest = "application/vnd.oci.image.manifest.v1+json"
	)
	blobUnknown := []byte(`{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
	for _, tc := range []struct {
		name      string
		mediaType string
		method    string
		url       string
		code      int
		body      []byte
		hint      bool
	}{
		{"index, blob unknown", index, "PUT", "http://h/v2/c/manifests/v1", 400, blobUnknown, true},
		{"manifest list, blob unknown", list, "PUT", "http://h/v2/c/manifests/v1", 400, blobUnknown, true},
		{"index, bare 400", index, "PUT", "http://h/v2/c/manifests/v1", 400, nil, true},
		{"index, 415", index, "PUT", "http://h/v2/c/manifests/v1", 415, nil, true},
		{"index, MANIFEST_INVALID as 404", index, "PUT", "http://h/v2/c/manifests/v1", 404, []byte(`{"errors":[{"code":"MANIFEST_INVALID"}]}`), true},
		{"image manifest", manifest, "PUT", "http://h/v2/c/manifests/v1", 400, blobUnknown, false},
		{"index, unauthenticated", index, "PUT", "http://h/v2/c/manifests/v1", 401, nil, false},
		{"index, denied", index, "PUT", "http://h/v2/c/manifests/v1", 403, []byte(`{"errors":[{"code":"DENIED"}]}`), false},
		{"index, unavailable", index, "PUT", "http://h/v2/c/manifests/v1", 503, nil, false},
		{"index, a blob upload", index, "PUT", "http://h/v2/c/blobs/uploads/u", 400, nil, false},
	} {
		err := hintIndexRefused(pkgerrors.Wrap(newError(tc.method, tc.url, tc.code, "", tc.body), "pushing"), tc.mediaType)
		if got := strings.Contains(err.Error(), "--format image-manifest"); got != tc.hint {
			t.Errorf("%s: %v: hint %v, want %v", tc.name, err, got, tc.hint)
		}
	}
}
