package cachetest

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

// Snapshot records every entry under dir, dir itself included, by its path
// relative to dir: size, mode and modification time. Two snapshots tell
// whether anything wrote into dir in between, even a probe file made and
// removed again (it shows in its directory's mtime, once the clock has
// moved past the last write before the first snapshot).
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		snap[rel] = fmt.Sprintf("size %d, mode %v, mtime %s", info.Size(), info.Mode(), info.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// Unchanged checks that after, a Snapshot, is before: no entry made,
// removed, resized or touched.
func Unchanged(t testing.TB, before, after map[string]string) {
	t.Helper()
	for name, b := range before {
		if a, ok := after[name]; !ok {
			t.Errorf("%s: removed", name)
		} else if a != b {
			t.Errorf("%s: %s -> %s", name, b, a)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s: made", name)
		}
	}
}
