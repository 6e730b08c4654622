package azbtest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildcache/remotecache/internal/objstoretest"
)

// proxy is a counting proxy in front of Azurite (objstoretest.Proxy)
// that can also make blobs look older than they are.
//
// Azurite keeps the times of blobs in its own database, which a test
// cannot set back (as the s3 tests set back the mtime of a file of the
// gateway), so the proxy ages a blob: age(name, d) makes the responses of
// reads of its properties (HEAD, GET) and of listings say it was last
// modified d ago, until a request that changes the blob (an upload, a
// metadata write, a delete) succeeds, after which Azurite's own time shows
// again, as on a blob written anew.
type proxy struct {
	*objstoretest.Proxy

	mu   sync.Mutex
	aged map[string]time.Time
}

// writeOps are the operations that change the container.
var writeOps = []string{"PUT", "BLOCK", "BLOCKLIST", "METADATA", "PROPERTIES", "COPY", "CREATE", "DELETE"}

// startProxy starts a proxy in front of target, stopped when the test
// ends. Uploads are Put Blob and Put Block requests; blobs are those
// under blobs/.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	p := &proxy{aged: map[string]time.Time{}}
	p.Proxy = objstoretest.StartProxy(t, target, objstoretest.ProxyConfig{
		Op:      opOf,
		Key:     blobName,
		Uploads: []string{"PUT", "BLOCK"},
		Writes:  writeOps,
		IsBlob: func(name string) bool {
			return strings.HasPrefix(name, "blobs/") || strings.Contains(name, "/blobs/")
		},
		ModifyResponse: p.modify,
	})
	return p
}

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
