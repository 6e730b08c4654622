package registry

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/buildcache/remotecache/internal/errclass"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// singleRequestMax is the size up to which a blob is uploaded in one
// request once all its bytes are in (a POST with ?digest=, or a PUT to the
// session a refused mount opened), instead of a POST that opens a session
// and a PUT that streams into it as the bytes come. It is the size the
// writer keeps in memory anyway.
const singleRequestMax = spoolMemory

// States of Remote.monolithic: whether the registry completes an upload
// in the POST that carries the blob (?digest=), which the OCI distribution
// spec makes optional. The reference registry does not: it opens a
// session and ignores the body.
const (
	monolithicUnknown int32 = iota
	monolithicProbing       // one upload is finding out; others do not try
	monolithicYes
	monolithicNo
)

// errStreamReauth is the failure of a streamed upload that the registry
// answered 401 to, with a challenge the authorizer took (an expired
// token): a new upload may succeed.
var errStreamReauth = errclass.With(errors.New("the registry asked for new credentials during a streamed upload"), errdefs.ErrUnauthenticated)

// request is one HTTP request to the registry.
type request struct {
	method, url string
	header      http.Header
	// body, if not nil, gives the body of size bytes, anew for each send;
	// a stream's only once: the registry's 401 to it then stands (after
	// the authorizer has taken its challenge, so that a new upload gets a
	// new token).
	body   func() (io.ReadCloser, error)
	size   int64
	stream bool
	// push asks for a token with push access to the repository; from, if
	// not "", for pull access to that repository too (a mount).
	push bool
	from string
}

// do sends one request without a body (see send).
func (r *Remote) do(ctx context.Context, method, u string, header http.Header) (*http.Response, error) {
	return r.send(ctx, request{method: method, url: u, header: header})
}

// send sends one request to the registry with containerd's client and
// authorizer, answering one authentication challenge. The caller closes
// the body of the response.
func (r *Remote) send(ctx context.Context, rq request) (*http.Response, error) {
	ctx, err := docker.ContextWithRepositoryScope(ctx, r.spec, rq.push)
	if err != nil {
		return nil, err
	}
	if rq.from != "" {
		ctx = docker.ContextWithAppendPullRepositoryScope(ctx, rq.from)
	}
	for try := 0; ; try++ {
		var body io.ReadCloser
		if rq.body != nil {
			if body, err = rq.body(); err != nil {
				return nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return nil, err
		}
		if body != nil {
			req.ContentLength = rq.size
		}
		for k, v := range rq.header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", userAgent)
		if a := r.host.Authorizer; a != nil {
			if err := a.Authorize(ctx, req); err != nil {
				if body != nil {
					body.Close()
				}
				return nil, err
			}
		}
		resp, err := r.host.Client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized || try > 0 || r.host.Authorizer == nil {
			return resp, nil
		}
		err = r.host.Authorizer.AddResponses(ctx, []*http.Response{resp})
		if errdefs.IsNotImplemented(err) {
			return resp, nil // no scheme we can answer: the 401 stands
		}
		if rq.stream && err == nil {
			// The authorizer has a new token, which a new upload of the
			// kept bytes takes.
			resp.Body.Close()
			return nil, errors.Wrapf(errStreamReauth, "%s %s", rq.method, req.URL.Redacted())
		}
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
	}
}

// repoURL is the address of path under the repository: blobs/…,
// manifests/….
func (r *Remote) repoURL(path string) string {
	return r.host.Scheme + "://" + r.host.Host + strings.TrimSuffix(r.host.Path, "/") + "/" + r.repo + "/" + path
}

// blobURL is the address of the blob dgst in the repository.
func (r *Remote) blobURL(dgst string) string { return r.repoURL("blobs/" + dgst) }

// mountSource returns the repository of the same registry that desc's
// distribution source annotation names, other than r's, or "".
func (r *Remote) mountSource(desc ocispec.Descriptor) string {
	for _, repo := range strings.Split(desc.Annotations[distributionSource+reference.Domain(r.named)], ",") {
		if repo = strings.TrimSpace(repo); repo != "" && repo != r.repo {
			return repo
		}
	}
	return ""
}

// started is the answer to a POST that starts an upload: done when the
// registry has the blob (mounted, or uploaded in that one request), else
// the session to upload into.
type started struct {
	done     bool
	location string
}

// startUpload starts an upload of desc with a POST: a mount from the
// repository from, if not "", or with body (all of desc's bytes), if not
// nil, the whole upload. A mount the registry answers 401 to (the
// credentials cannot read from) is asked again without the mount.
func (r *Remote) startUpload(ctx context.Context, desc ocispec.Descriptor, from string, body func() (io.ReadCloser, error)) (started, error) {
	q := url.Values{}
	switch {
	case from != "":
		q.Set("mount", desc.Digest.String())
		q.Set("from", from)
	case body != nil:
		q.Set("digest", desc.Digest.String())
	}
	rq := request{method: http.MethodPost, url: r.repoURL("blobs/uploads/"), push: true, from: from}
	if len(q) > 0 {
		rq.url += "?" + q.Encode()
	}
	if body != nil {
		rq.body, rq.size = body, desc.Size
		rq.header = http.Header{"Content-Type": {"application/octet-stream"}}
	}
	resp, err := r.send(ctx, rq)
	if err != nil {
		return started{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return started{done: true}, nil
	case http.StatusAccepted, http.StatusOK, http.StatusNoContent:
		loc, err := location(resp)
		return started{location: loc}, err
	case http.StatusUnauthorized, http.StatusForbidden:
		if from != "" {
			return r.startUpload(ctx, desc, "", nil)
		}
	}
	return started{}, responseError(resp)
}

// location is the absolute address of the upload session resp names.
func location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.Wrapf(errdefs.ErrUnknown, "%s %s: %s without a Location", resp.Request.Method, resp.Request.URL.Redacted(), resp.Status)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", errors.Wrapf(errdefs.ErrUnknown, "upload location %q: %v", loc, err)
	}
	return u.String(), nil
}

// finishUpload completes the upload session at loc with a PUT of body
// (all of desc's bytes; a stream, given only once, if stream).
func (r *Remote) finishUpload(ctx context.Context, loc string, desc ocispec.Descriptor, body func() (io.ReadCloser, error), stream bool) error {
	u, err := url.Parse(loc)
	if err != nil {
		return errors.Wrapf(errdefs.ErrUnknown, "upload location %q: %v", loc, err)
	}
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	resp, err := r.send(ctx, request{
		method: http.MethodPut, url: u.String(), push: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body:   body, size: desc.Size, stream: stream,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK, http.StatusNoContent:
		return nil
	}
	return responseError(resp)
}

// uploadWhole uploads desc, whose bytes body gives, in as few requests as
// the registry takes: one POST with ?digest= where it completes the
// upload (found out once per Remote), else a POST and a PUT.
func (r *Remote) uploadWhole(ctx context.Context, desc ocispec.Descriptor, body func() (io.ReadCloser, error)) error {
	probe := r.monolithic.CompareAndSwap(monolithicUnknown, monolithicProbing)
	var s started
	var err error
	if probe || r.monolithic.Load() == monolithicYes {
		s, err = r.startUpload(ctx, desc, "", body)
		if probe {
			settle(&r.monolithic, err, s.done)
		}
	} else {
		s, err = r.startUpload(ctx, desc, "", nil)
	}
	if err != nil || s.done {
		return err
	}
	return r.finishUpload(ctx, s.location, desc, body, false)
}

// settle records what a probe of single-request uploads found: yes if the
// POST completed the upload, no if it opened a session, unknown again if
// it failed.
func settle(state *atomic.Int32, err error, done bool) {
	switch {
	case err != nil:
		state.Store(monolithicUnknown)
	case done:
		state.Store(monolithicYes)
	default:
		state.Store(monolithicNo)
	}
}

// liveUpload is a PUT into an upload session whose body streams the bytes
// of a large blob as the exporter writes them.
type liveUpload struct {
	pw   *io.PipeWriter
	done chan error // the PUT's result, once
	err  error      // the PUT's result, once received
	got  bool
}

// startLive starts the PUT of desc into the session at loc.
func (r *Remote) startLive(ctx context.Context, loc string, desc ocispec.Descriptor) *liveUpload {
	pr, pw := io.Pipe()
	l := &liveUpload{pw: pw, done: make(chan error, 1)}
	go func() {
		err := r.finishUpload(ctx, loc, desc, func() (io.ReadCloser, error) { return pr, nil }, true)
		pr.CloseWithError(errors.New("upload request ended"))
		l.done <- err
	}()
	return l
}

// result waits for the PUT's result.
func (l *liveUpload) result() error {
	if !l.got {
		l.err, l.got = <-l.done, true
	}
	return l.err
}

// write streams p; if the PUT has ended, its result is the error.
func (l *liveUpload) write(p []byte) error {
	if _, err := l.pw.Write(p); err != nil {
		if rerr := l.result(); rerr != nil {
			return rerr
		}
		return err
	}
	return nil
}

// commit ends the body and returns the PUT's result.
func (l *liveUpload) commit() error {
	l.pw.Close()
	return l.result()
}

// abort ends the PUT with a broken body.
func (l *liveUpload) abort() {
	l.pw.CloseWithError(errors.New("upload abandoned"))
	l.result()
}

// mountedError is the errdefs.ErrAlreadyExists of a blob the registry
// mounted from another repository (remotecache.SkipDetailer).
type mountedError struct{ from string }

func (e *mountedError) Error() string {
	return "mounted from " + e.from + ": " + errdefs.ErrAlreadyExists.Error()
}
func (e *mountedError) Unwrap() error      { return errdefs.ErrAlreadyExists }
func (e *mountedError) SkipDetail() string { return "mounted from " + e.from }

// manifestDigest asks for the digest of the manifest at the reference's
// tag with a HEAD request, "" if there is none or the registry does not
// say.
func (r *Remote) manifestDigest(ctx context.Context) (digest.Digest, error) {
	var d digest.Digest
	err := r.retry(ctx, func(ctx context.Context) error {
		resp, err := r.do(ctx, http.MethodHead, r.repoURL("manifests/"+r.object()), http.Header{"Accept": {manifestAccept}})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			d = digest.Digest(resp.Header.Get("Docker-Content-Digest"))
			return nil
		case http.StatusNotFound:
			return nil
		}
		return responseError(resp)
	})
	return d, err
}

// manifestAccept are the manifest media types asked for.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// object is the tag, or the digest of a digest reference.
func (r *Remote) object() string {
	if t, ok := r.named.(reference.Tagged); ok {
		return t.Tag()
	}
	if d, ok := r.named.(reference.Digested); ok {
		return d.Digest().String()
	}
	return "latest"
}

// putManifest pushes the manifest desc, whose bytes body gives, under the
// reference's tag (by digest for a digest reference).
func (r *Remote) putManifest(ctx context.Context, desc ocispec.Descriptor, body func() (io.ReadCloser, error)) error {
	obj := r.object()
	if _, tagged := r.named.(reference.Tagged); !tagged {
		obj = desc.Digest.String()
	}
	resp, err := r.send(ctx, request{
		method: http.MethodPut, url: r.repoURL("manifests/" + obj), push: true,
		header: http.Header{"Content-Type": {desc.MediaType}},
		body:   body, size: desc.Size,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK, http.StatusNoContent, http.StatusAccepted:
		return nil
	}
	return responseError(resp)
}
