package registry

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/errclass"
)

// Error is an error status the registry answered a request with, and the
// errors its body lists ({"errors":[{"code":…,"message":…,"detail":…}]} in
// the OCI distribution spec). Its class, for errors.Is, follows the status:
// errdefs.ErrNotFound for 404, ErrUnauthenticated for 401,
// ErrPermissionDenied for 403, ErrInvalidArgument for 400,
// ErrResourceExhausted for 429, ErrUnavailable for 5xx, and so on.
type Error struct {
	// Method and URL are the request's; the URL has no query, which may
	// hold upload state.
	Method, URL string
	// StatusCode and Status are the response's ("500 Internal Server
	// Error").
	StatusCode int
	Status     string
	// Errors are the errors the response body lists, if it does: all of
	// them, though Error names each distinct code and message once (a
	// registry lists one MANIFEST_BLOB_UNKNOWN per blob a manifest names).
	Errors []ErrorDetail
	// Body is the start of a response body that is not such a list.
	Body string
	// Hint, if not empty, says what may mend the error; the message ends
	// with it.
	Hint string
}

// ErrorDetail is one error of a registry's error response.
type ErrorDetail struct {
	Code    string          `json:"code"`
	Message string          `json:"message,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// maxBodyText is how much of a body that is not an error list Error keeps.
const maxBodyText = 256

// Error returns, for example, "PUT http://127.0.0.1:5000/v2/cache/blobs/
// uploads/…: 500 Internal Server Error: UNKNOWN: disk on fire". Errors of
// the body with the same code and message are given once.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Method + " " + e.URL + ": " + e.Status)
	sep := ": "
	seen := make(map[[2]string]bool, len(e.Errors))
	for _, d := range e.Errors {
		k := [2]string{d.Code, d.Message}
		if seen[k] {
			continue
		}
		seen[k] = true
		b.WriteString(sep + printable(d.Code))
		if d.Message != "" {
			b.WriteString(": " + printable(d.Message))
		}
		sep = "; "
	}
	if len(e.Errors) == 0 && e.Body != "" {
		b.WriteString(": " + e.Body)
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	return b.String()
}

// indexRefusedHint is the Hint of a registry's refusal of an index or a
// manifest list.
const indexRefusedHint = "the registry may not accept an index of blobs; use the image-manifest form: remotecache.FormatImageManifest, --format image-manifest"

// hintIndexRefused gives err, the failure of a push of a manifest of
// media type mediaType, the hint to use the image-manifest form when the
// registry refused an index or manifest list as invalid: the reference
// registry by default (validation.manifests.indexes.platforms: all), ECR,
// GAR and Quay refuse an index whose entries are blobs, not manifests,
// with MANIFEST_BLOB_UNKNOWN, MANIFEST_INVALID or a bare 400.
func hintIndexRefused(err error, mediaType string) error {
	if mediaType != ocispec.MediaTypeImageIndex && mediaType != images.MediaTypeDockerSchema2ManifestList {
		return err
	}
	var e *Error
	if !errors.As(err, &e) || e.Method != http.MethodPut || !strings.Contains(e.URL, "/manifests/") {
		return err
	}
	refused := false
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		refused = true
	}
	for _, d := range e.Errors {
		switch d.Code {
		case "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "UNSUPPORTED":
			refused = true
		}
	}
	if refused {
		e.Hint = indexRefusedHint
	}
	return err
}

// Unwrap returns the errdefs class of the status.
func (e *Error) Unwrap() error {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return errdefs.ErrInvalidArgument
	case http.StatusMethodNotAllowed:
		return errdefs.ErrNotImplemented
	case http.StatusTooManyRequests:
		return errdefs.ErrResourceExhausted
	}
	if class, ok := errclass.OfStatus(e.StatusCode); ok {
		return class
	}
	return errdefs.ErrUnknown
}

// newError makes an Error of a status and a body.
func newError(method, rawURL string, code int, status string, body []byte) *Error {
	e := &Error{Method: method, URL: rawURL, StatusCode: code, Status: status}
	if u, err := url.Parse(rawURL); err == nil {
		u.RawQuery, u.User, u.Fragment = "", nil, ""
		e.URL = u.String()
	}
	if e.Status == "" {
		e.Status = strings.TrimSpace(strconv.Itoa(code) + " " + http.StatusText(code))
	}
	e.setBody(body)
	return e
}

func (e *Error) setBody(body []byte) {
	var list struct {
		Errors []ErrorDetail `json:"errors"`
	}
	if json.Unmarshal(body, &list) == nil && len(list.Errors) > 0 {
		e.Errors = list.Errors
		return
	}
	s := strings.TrimSpace(string(body))
	if len(s) > maxBodyText {
		s = s[:maxBodyText] + "…"
	}
	e.Body = printable(s)
}

// printable is s with every character that is not printable (a newline, a
// control code) made a space: a registry's words stay on the error's one
// line.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
}

// responseError makes an Error of resp, reading a little of its body. The
// method and address are those of resp.Request, which retryAfterTransport
// sets when the transport did not.
func responseError(resp *http.Response) *Error {
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
	var method, u string
	if req := resp.Request; req != nil {
		method = req.Method
		if req.URL != nil {
			u = req.URL.String()
		}
	}
	return newError(method, u, resp.StatusCode, resp.Status, body)
}

// classify turns the errors of containerd's resolver into ours: an
// unexpected status into an *Error, a refused authorization into an error
// of class errdefs.ErrUnauthenticated, a network failure into one of class
// errdefs.ErrUnavailable. Other errors keep their class, or get
// errdefs.ErrUnknown: every error out of this package has a class.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *Error
	if errors.As(err, &re) {
		var later *RetryLaterError
		if errors.As(err, &later) {
			return later // without containerd's "failed to do request"
		}
		return err
	}
	var se remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &se) {
		return newError(se.RequestMethod, se.RequestURL, se.StatusCode, se.Status, se.Body)
	}
	if errors.Is(err, docker.ErrInvalidAuthorization) {
		return errclass.With(err, errdefs.ErrUnauthenticated)
	}
	if errclass.Has(err) {
		return err
	}
	// The registry could not be reached, or the connection broke.
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
		return errclass.With(err, errdefs.ErrUnavailable)
	}
	return errclass.With(err, errdefs.ErrUnknown)
}

// wrap classifies err, fills in the registry's message where a HEAD
// request got none (see explain), and says what failed.
func (r *Remote) wrap(ctx context.Context, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	err = classify(err)
	var re *Error
	if errors.As(err, &re) {
		r.explain(ctx, re)
	}
	return errors.Wrapf(err, format, args...)
}

// explain fills in the body of an error status to a HEAD request, which
// has none, from a GET of the same address, if that gets the same status:
// the registry's message is what tells a user why (containerd does the same
// for 403 only). Nothing is done once ctx is done.
func (r *Remote) explain(ctx context.Context, e *Error) {
	if e.Method != http.MethodHead || len(e.Errors) > 0 || e.Body != "" ||
		e.StatusCode < 400 || e.StatusCode == http.StatusNotFound || ctx.Err() != nil {
		return
	}
	resp, err := r.do(ctx, http.MethodGet, e.URL, http.Header{"Range": {"bytes=0-0"}})
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == e.StatusCode {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e.setBody(body)
	}
}

// hintPushRefused gives err, the failure of a push, a hint that the
// credentials may not allow pushing when the registry answered 401 or 403
// (a token without push scope: distribution answers 401
// "insufficient_scope").
func hintPushRefused(err error, repo string) error {
	var e *Error
	if !errors.As(err, &e) || e.Hint != "" || (e.Method != http.MethodPost && e.Method != http.MethodPut && e.Method != http.MethodPatch) {
		return err
	}
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		e.Hint = "the credentials may not allow pushing to " + repo
	}
	return err
}
