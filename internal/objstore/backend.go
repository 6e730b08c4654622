package objstore

import (
	"context"
	"io"
	"time"
)

// Backend is the object storage under a Store: a bucket or a container,
// through a cloud SDK. Every error it returns has an errdefs class
// (errors.Is finds it): errdefs.ErrNotFound only for a missing object,
// so that no other failure (a 503, a refused credential, a broken
// connection) reads as a missing blob. Context errors are returned as
// they are.
type Backend interface {
	// Head returns the object at key, with its size and times.
	Head(ctx context.Context, key string) (Object, error)
	// Get reads the object at key from offset off to its end.
	Get(ctx context.Context, key string, off int64) (Body, error)
	// Put writes size bytes of body as the object at key, with mediaType
	// ("" for none) as its content type, whole or not at all. How is the
	// backend's: one request, or parts or blocks that are sections of
	// body, which it may read again to retry them.
	Put(ctx context.Context, key string, body io.ReaderAt, size int64, mediaType string) error
	// Touch refreshes an object that Head returned, so that lifecycle
	// rules which expire objects by age keep it, without sending its
	// bytes, and returns the time it was refreshed at.
	Touch(ctx context.Context, obj Object) (time.Time, error)
	// List calls fn for every object whose key starts with prefix, with
	// its key, size, times and ETag.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// Delete removes the object at key. With an etag, it removes it only
	// if its ETag is still etag, and fails with
	// errdefs.ErrFailedPrecondition if it is not (Store gives one only
	// when Config.DeleteIfMatch says the backend can).
	Delete(ctx context.Context, key, etag string) error
	// Where names the object at key in messages ("s3://BUCKET/KEY").
	Where(key string) string
}

// Object is what Head and List tell of an object.
type Object struct {
	Key  string
	Size int64
	// CreatedAt is when the object was made, UpdatedAt when it was last
	// written or refreshed (what Prune's grace period and the touch
	// refresh age count from).
	CreatedAt, UpdatedAt time.Time
	// ETag is the object's entity tag ("" if unknown), for a
	// conditional Delete.
	ETag string
	// ContentType and Metadata are what a refresh keeps (from Head).
	ContentType string
	Metadata    map[string]string
}

// Body is the body of an object that Get opened.
type Body struct {
	io.ReadCloser
	// Size is how many bytes the body has (from the offset on), -1 if
	// the response did not say.
	Size int64
}

// NewBody returns the Body of rc, of the length a response gave (nil if
// it gave none).
func NewBody(rc io.ReadCloser, length *int64) Body {
	size := int64(-1)
	if length != nil {
		size = *length
	}
	return Body{ReadCloser: rc, Size: size}
}
