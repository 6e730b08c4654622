package registry

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/pkg/errors"
)

// maxRetryAfter is the longest Retry-After that is waited for; a registry
// that asks for a longer wait fails the operation at once.
const maxRetryAfter = time.Minute

// retry runs op until it succeeds, fails in a way a retry cannot mend, has
// been tried as often as the options allow, or ctx is done. Between two
// attempts it waits a backoff (see backoff).
func (r *Remote) retry(ctx context.Context, op func(context.Context) error) error {
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil || !retryable(err) || n >= r.opts.attempts {
			return attempts(err, n)
		}
		if err := sleep(ctx, r.backoff(n)); err != nil {
			return err
		}
	}
}

// backoff returns the wait after the n-th failed attempt: the minimum
// backoff doubled n-1 times, capped at the maximum, of which a random part
// up to half is taken off (jitter).
func (r *Remote) backoff(n int) time.Duration {
	d := r.opts.maxBackoff
	if n-1 < 62 {
		if e := r.opts.minBackoff << (n - 1); e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return d - half + rand.N(half+1)
}

// sleep waits d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryable tells whether an attempt that failed with err may succeed if
// tried again: the registry answered 408 Request Timeout, 429 Too Many
// Requests or a 5xx status other than 501 Not Implemented, or the
// connection broke (reset, closed early, timed out). Other 4xx statuses,
// a Retry-After too long to wait for (RetryLaterError), a cancelled
// context and anything else fail at once.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var later *RetryLaterError
	if errors.As(err, &later) {
		return false
	}
	var re *Error
	if errors.As(err, &re) {
		return retryableStatus(re.StatusCode)
	}
	var se remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &se) {
		return retryableStatus(se.StatusCode)
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) { // the transport closed a connection that broke
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// uploadRetryable tells whether an upload that failed with err may
// succeed as a new upload: when retryable says so, and when the registry
// says the upload session is unknown, broken or at another offset, as
// happens when containerd sends a request again after it broke off
// mid-body (BLOB_UPLOAD_UNKNOWN, BLOB_UPLOAD_INVALID, RANGE_INVALID), or
// when containerd restarted the request more often than the writer
// follows (content.ErrReset), or when a streamed upload met an expired
// token (errStreamReauth).
func uploadRetryable(err error) bool {
	if retryable(err) || errors.Is(err, content.ErrReset) || errors.Is(err, errStreamReauth) {
		return true
	}
	var re *Error
	if errors.As(classify(err), &re) {
		for _, d := range re.Errors {
			switch d.Code {
			case "BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID", "RANGE_INVALID":
				return true
			}
		}
	}
	return false
}

func retryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return true
	case code >= 500 && code != http.StatusNotImplemented:
		return true
	}
	return false
}

// attemptsError records how many attempts an operation took before it
// failed, when it took more than one.
type attemptsError struct {
	n   int
	err error
}

func attempts(err error, n int) error {
	if err == nil || n < 2 {
		return err
	}
	return &attemptsError{n: n, err: err}
}

func (e *attemptsError) Error() string {
	return e.err.Error() + " (after " + strconv.Itoa(e.n) + " attempts)"
}
func (e *attemptsError) Unwrap() error { return e.err }

// retryAfterTransport honours the Retry-After header of 429 Too Many
// Requests and 503 Service Unavailable responses: it holds such a response
// back for the time the registry asks, so that whoever retries next,
// containerd's resolver (which retries a 429 at once) or Remote.retry,
// does not come back sooner. A registry that asks for more than
// maxRetryAfter gets no retry: the response becomes a *RetryLaterError,
// which fails the operation at once. The transport retries nothing
// itself: uploads are not idempotent at this level (their bodies are
// streamed once), and every operation of a Remote is retried as a whole by
// Remote.retry or by the upload's writer.
type retryAfterTransport struct {
	base http.RoundTripper
}

func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.Request == nil {
		// A RoundTripper of WithTransport need not set it (net/http's
		// does); responseError, and containerd's resolver, pusher and
		// authorizer, read it.
		resp.Request = req
	}
	if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if !ok {
		return resp, nil
	}
	if d > maxRetryAfter {
		defer resp.Body.Close()
		return nil, &RetryLaterError{Err: responseError(resp), After: d}
	}
	if err := sleep(req.Context(), d); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// RetryLaterError is a registry's answer that asks to come back later
// than this package waits (one minute), such as a rate limit that resets
// in hours. It is not retried.
type RetryLaterError struct {
	Err   *Error
	After time.Duration
}

func (e *RetryLaterError) Error() string {
	return e.Err.Error() + " (the registry asks to retry after " + e.After.String() + ")"
}

func (e *RetryLaterError) Unwrap() error { return e.Err }

// parseRetryAfter reads a Retry-After value: a number of seconds or an
// HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, 1<<30)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
