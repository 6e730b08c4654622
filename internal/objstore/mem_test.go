package objstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/objstore"
)

// mem is a Backend in memory, with the hooks the tests need: bodies that
// break, objects made to look old, deletes that see a change.
type mem struct {
	mu      sync.Mutex
	objs    map[string]*memObject
	etags   int
	calls   map[string]int // by method
	breakAt int64          // bodies of Get end after this many bytes (0: never)
	breaks  int            // how many bodies break yet
	// afterList runs after a List, as a racing export would.
	afterList func()
}

type memObject struct {
	data    []byte
	obj     objstore.Object
	touched int
}

func newMem() *mem { return &mem{objs: map[string]*memObject{}, calls: map[string]int{}} }

func (m *mem) call(op string) {
	m.mu.Lock()
	m.calls[op]++
	m.mu.Unlock()
}

func (m *mem) count(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

func (m *mem) Head(_ context.Context, key string) (objstore.Object, error) {
	m.call("Head")
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return objstore.Object{}, errors.Wrapf(errdefs.ErrNotFound, "%s", key)
	}
	return o.obj, nil
}

func (m *mem) Get(_ context.Context, key string, off int64) (objstore.Body, error) {
	m.call("Get")
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return objstore.Body{}, errors.Wrapf(errdefs.ErrNotFound, "%s", key)
	}
	if off > int64(len(o.data)) || (off == int64(len(o.data)) && off > 0) {
		return objstore.Body{}, errors.Wrapf(errdefs.ErrOutOfRange, "range from %d of %d bytes", off, len(o.data))
	}
	var r io.Reader = bytes.NewReader(o.data[off:])
	if m.breaks > 0 && m.breakAt > 0 {
		m.breaks--
		r = io.MultiReader(io.LimitReader(r, m.breakAt), errReader{})
	}
	return objstore.Body{ReadCloser: io.NopCloser(r), Size: int64(len(o.data)) - off}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func (m *mem) Put(_ context.Context, key string, body io.ReaderAt, size int64, mediaType string) error {
	m.call("Put")
	dt := make([]byte, size)
	if _, err := body.ReadAt(dt, 0); err != nil && err != io.EOF {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.etags++
	now := time.Now()
	m.objs[key] = &memObject{data: dt, obj: objstore.Object{Key: key, Size: size, CreatedAt: now, UpdatedAt: now, ETag: fmt.Sprint(m.etags), ContentType: mediaType}}
	return nil
}

func (m *mem) Touch(_ context.Context, obj objstore.Object) (time.Time, error) {
	m.call("Touch")
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[obj.Key]
	if !ok {
		return time.Time{}, errors.Wrapf(errdefs.ErrNotFound, "%s", obj.Key)
	}
	m.etags++
	o.touched++
	o.obj.UpdatedAt, o.obj.ETag = time.Now(), fmt.Sprint(m.etags)
	return o.obj.UpdatedAt, nil
}

func (m *mem) List(_ context.Context, prefix string, fn func(objstore.Object) error) error {
	m.call("List")
	m.mu.Lock()
	var objs []objstore.Object
	for _, k := range slices.Sorted(maps.Keys(m.objs)) {
		if strings.HasPrefix(k, prefix) {
			objs = append(objs, m.objs[k].obj)
		}
	}
	m.mu.Unlock()
	for _, o := range objs {
		if err := fn(o); err != nil {
			return err
		}
	}
	if m.afterList != nil {
		m.afterList()
	}
	return nil
}

func (m *mem) Delete(_ context.Context, key, etag string) error {
	m.call("Delete")
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	switch {
	case !ok:
		return errors.Wrapf(errdefs.ErrNotFound, "%s", key)
	case etag != "" && o.obj.ETag != etag:
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "%s: ETag %s, not %s", key, o.obj.ETag, etag)
	}
	delete(m.objs, key)
	return nil
}

func (m *mem) Where(key string) string { return "mem://" + key }

// age makes the object at key look last changed d ago.
func (m *mem) age(key string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objs[key]; ok {
		o.obj.UpdatedAt = time.Now().Add(-d)
	}
}

func (m *mem) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.objs))
}
