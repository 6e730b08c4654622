package registry

import (
	"math"
	"net/http"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/option"
)

// Defaults of the retry options.
const (
	// DefaultAttempts is how many times an operation is tried in all.
	DefaultAttempts = 5
	// DefaultMinBackoff is the wait before the first retry.
	DefaultMinBackoff = 200 * time.Millisecond
	// DefaultMaxBackoff caps the wait between two attempts.
	DefaultMaxBackoff = 10 * time.Second
)

type options struct {
	plainHTTP  bool
	creds      func(host string) (string, string, error)
	transport  http.RoundTripper
	attempts   int
	minBackoff time.Duration
	maxBackoff time.Duration
	spoolDir   string
}

func defaultOptions() options {
	return options{
		attempts:   DefaultAttempts,
		minBackoff: DefaultMinBackoff,
		maxBackoff: DefaultMaxBackoff,
	}
}

// Option configures New.
type Option func(*options) error

// WithPlainHTTP makes the registry be reached over plain HTTP when on is
// true. Default: false, that is HTTPS, except for loopback hosts (localhost,
// 127.0.0.0/8, ::1), which are always reached over plain HTTP.
func WithPlainHTTP(on bool) Option {
	return func(o *options) error {
		o.plainHTTP = on
		return nil
	}
}

// WithCredentials sets the user name and secret (password or token) to
// log in to the registry with, instead of those of the Docker config.
// An empty user with a secret is an identity (refresh) token, as in the
// Docker config. Default: the Docker config's (see New).
func WithCredentials(user, secret string) Option {
	return func(o *options) error {
		o.creds = func(string) (string, string, error) { return user, secret, nil }
		return nil
	}
}

// WithCredentialsFunc sets the function that gives the user name and
// secret for the registry host (as in the reference, with its port;
// "registry-1.docker.io" for Docker Hub). It is called when the registry
// asks for credentials, not before; two empty strings mean anonymous access.
// Default: the Docker config's (see New).
func WithCredentialsFunc(fn func(host string) (user, secret string, err error)) Option {
	return func(o *options) error {
		if fn == nil {
			return errors.Wrap(errdefs.ErrInvalidArgument, "nil credentials function")
		}
		o.creds = fn
		return nil
	}
}

// WithTransport sets the HTTP transport the requests go through, for
// example one with a custom TLS configuration. Default: containerd's
// docker.DefaultHTTPTransport (proxy from the environment, 30 s timeouts
// for dialling and for response headers).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.Wrap(errdefs.ErrInvalidArgument, "nil transport")
		}
		o.transport = rt
		return nil
	}
}

// WithRetries sets how many times in all an operation is tried: a blob or
// manifest upload, a blob read, a tag resolution, a blob check. Default:
// DefaultAttempts (5); n must be at least 1 (1: no retries).
func WithRetries(n int) Option {
	return option.InRange(n, 1, math.MaxInt, "retry attempts", "at least 1", func(o *options, n int) { o.attempts = n })
}

// WithBackoff sets the wait before the first retry, min, doubled at each
// further retry up to max. Each wait is drawn at random between half of it
// and all of it, so that clients that failed together do not come back
// together. Default: DefaultMinBackoff (200 ms) and DefaultMaxBackoff
// (10 s); 0 < min <= max.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) error {
		if min <= 0 || max < min {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "backoff from %v to %v: want 0 < min <= max", min, max)
		}
		o.minBackoff, o.maxBackoff = min, max
		return nil
	}
}

// WithSpoolDir sets the directory where uploads of blobs over 1 MiB keep
// their bytes until the registry has them, so that a failed upload can be
// sent again. Default: os.TempDir().
func WithSpoolDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.Wrap(errdefs.ErrInvalidArgument, "empty spool directory")
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return errors.Wrap(err, "spool directory")
		}
		if !fi.IsDir() {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "spool directory %s: not a directory", dir)
		}
		o.spoolDir = dir
		return nil
	}
}
