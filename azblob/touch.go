package azblob

import (
	"context"
	"strings"
	"time"

	"github.com/buildcache/remotecache/internal/objstore"
)

// touchMetadata is the metadata a refresh sets: the time of the refresh.
// (BuildKit's s3 exporter sets "updated-at"; Azure metadata names are C#
// identifiers, without hyphens.)
const touchMetadata = "updated_at"

// updatedAt is when a blob was last written or refreshed: its
// Last-Modified time, or its updated_at metadata if later (a server that
// kept the time of a blob whose metadata was set would otherwise have it
// refreshed at every export, and pruned as old).
func updatedAt(lastModified *time.Time, meta map[string]*string) time.Time {
	var t time.Time
	if lastModified != nil {
		t = *lastModified
	}
	for k, v := range meta {
		// The SDK gives metadata names as HTTP headers, capitalized.
		if !strings.EqualFold(k, touchMetadata) || v == nil {
			continue
		}
		if m, err := time.Parse(time.RFC3339Nano, *v); err == nil && m.After(t) {
			return m
		}
	}
	return t
}

// Touch refreshes a blob: it sets the blob's metadata again (what it had,
// and updated_at), which gives the blob a new Last-Modified time, the age
// lifecycle rules go by (daysAfterModificationGreaterThan), without
// sending its bytes. It returns the blob's new modification time.
func (b *backend) Touch(ctx context.Context, obj objstore.Object) (time.Time, error) {
	now := time.Now().UTC()
	meta := map[string]*string{}
	for k, v := range obj.Metadata {
		if !strings.EqualFold(k, touchMetadata) {
			meta[k] = &v
		}
	}
	stamp := now.Format(time.RFC3339Nano)
	meta[touchMetadata] = &stamp
	resp, err := b.cc.NewBlobClient(obj.Key).SetMetadata(ctx, meta, nil)
	if err != nil {
		return time.Time{}, classify(err)
	}
	return updatedAt(resp.LastModified, meta), nil
}
