package registry

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzErrorBody: whatever body a registry answers with, the Error made of
// it is one line of printable text that gives the request and the status,
// and never the query of the address (an upload session's state).
//
//	go test -run '^$' -fuzz FuzzErrorBody -fuzztime 1m .
func FuzzErrorBody(f *testing.F) {
	for _, s := range []string{
		`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:a"}]}`,
		`{"errors":[{"code":"DENIED","message":"line one\nline two"}]}`,
		`{"errors":[]}`, `<html><body>502 Bad Gateway</body></html>`, "", "\x00\x01\t\r\n", `{"errors":[{"code":1}]}`,
	} {
		f.Add(503, []byte(s))
	}
	f.Fuzz(func(t *testing.T, code int, body []byte) {
		e := newError("PUT", "http://127.0.0.1:5000/v2/c/blobs/uploads/u?_state=secret&digest=sha256:x", code, "", body)
		msg := e.Error()
		if !strings.HasPrefix(msg, "PUT http://127.0.0.1:5000/v2/c/blobs/uploads/u: ") {
			t.Fatalf("error %q does not begin with the request", msg)
		}
		if strings.Contains(msg, "_state") {
			t.Fatalf("error %q gives the upload's state", msg)
		}
		for _, r := range msg {
			if !unicode.IsPrint(r) {
				t.Fatalf("error %q has the unprintable %q", msg, r)
			}
		}
	})
}
