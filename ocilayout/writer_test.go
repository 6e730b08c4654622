package ocilayout_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/ocilayout"
)

// blobFiles lists every file under dir's blobs/, temp files included, as
// paths relative to blobs/.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	root := filepath.Join(dir, "blobs")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files
}

// checkBlobs fails t unless every file under dir's blobs/ but temp files
// holds the bytes its name says (no torn blob), and returns the temp files.
func checkBlobs(t *testing.T, dir string) (temps []string) {
	t.Helper()
	for _, f := range blobFiles(t, dir) {
		alg, name, _ := strings.Cut(f, "/")
		if strings.HasPrefix(name, ".tmp-") {
			temps = append(temps, f)
			continue
		}
		dt, err := os.ReadFile(filepath.Join(dir, "blobs", f))
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.Algorithm(alg).FromBytes(dt); got.Encoded() != name {
			t.Fatalf("blobs/%s has the bytes of %s (%d bytes): a torn blob", f, got, len(dt))
		}
	}
	return temps
}

// The writer's content.Writer and content.IngestManager contract: one
// writer per ref, Status and ListStatuses while it writes, Truncate,
// Close and Abort leaving nothing, already-exists at Writer and at
// Commit, read-only blobs, a Commit under another algorithm.
func TestWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	data := "some blob"
	desc := ocispec.Descriptor{Digest: digest.FromString(data), Size: int64(len(data))}

	w := writeString(t, s, "a", "wrong bytes first", content.WithDescriptor(desc))
	st, err := s.Status(ctx, "a")
	if err != nil || st.Ref != "a" || st.Offset != 17 || st.Total != desc.Size || st.Expected != desc.Digest {
		t.Fatalf("Status(a) = %+v, %v", st, err)
	}
	if _, err := s.Writer(ctx, content.WithRef("a")); !errdefs.IsUnavailable(err) {
		t.Fatalf("a second Writer(a) = %v, want unavailable", err)
	}
	writeString(t, s, "b", "other").Close()
	if sts, err := s.ListStatuses(ctx); err != nil || len(sts) != 1 || sts[0].Ref != "a" {
		t.Fatalf("ListStatuses = %+v, %v; want a", sts, err)
	}
	if sts, err := s.ListStatuses(ctx, "ref==b"); err != nil || len(sts) != 0 {
		t.Fatalf("ListStatuses(ref==b) = %+v, %v; want none", sts, err)
	}
	if temps := blobTemps(dir); len(temps) != 1 || !strings.Contains(filepath.Base(temps[0]), desc.Digest.Encoded()) {
		t.Fatalf("temp files %v, want one named for %s", temps, desc.Digest)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if w.Digest() != desc.Digest {
		t.Fatalf("running digest %s after Truncate, want %s", w.Digest(), desc.Digest)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Commit: %v", err)
	}
	if got := blobFiles(t, dir); len(got) != 1 || got[0] != "sha256/"+desc.Digest.Encoded() {
		t.Fatalf("blobs/ holds %v, want the blob alone", got)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())); fi.Mode().Perm() != 0o444 {
			t.Errorf("blob mode %v, want read-only", fi.Mode())
		}
	}
	if _, err := s.Status(ctx, "a"); !errdefs.IsNotFound(err) {
		t.Fatalf("Status(a) after Commit = %v, want not found", err)
	}
	if _, err := s.Writer(ctx, content.WithRef("c"), content.WithDescriptor(desc)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Writer of a blob there = %v, want already exists", err)
	}

	// Another writer that got there first: Commit says already exists.
	other := openT(t, dir)
	late := "late blob"
	w1 := writeString(t, s, "late", late)
	if err := content.WriteBlob(ctx, other, "late", strings.NewReader(late), ocispec.Descriptor{Digest: digest.FromString(late), Size: int64(len(late))}); err != nil {
		t.Fatal(err)
	}
	if err := w1.Commit(ctx, int64(len(late)), digest.FromString(late)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Commit of a blob another writer committed = %v, want already exists", err)
	}

	// Abort and Close leave nothing; the ref is free again.
	w2 := writeString(t, s, "x", "aborted")
	if err := s.Abort(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write([]byte("more")); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Write after Abort = %v", err)
	}
	writeString(t, s, "x", "closed").Close()
	if temps := blobTemps(dir); len(temps) != 0 {
		t.Fatalf("temp files left by Abort and Close: %v", temps)
	}

	// No descriptor, committed under sha512: hashed again, stored there.
	sum := sha512.Sum512([]byte(data))
	d512 := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
	if err := writeString(t, s, "sha512", data).Commit(ctx, desc.Size, d512); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx, d512); err != nil || info.Size != desc.Size {
		t.Fatalf("Info(%s) = %+v, %v", d512, info, err)
	}

	// Close gives up the Store's writes in progress.
	open := writeString(t, other, "open", "never committed")
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := open.Write([]byte("x")); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Write after the Store closed = %v", err)
	}
	if temps := blobTemps(dir); len(temps) != 0 {
		t.Fatalf("temp files left by Close of the Store: %v", temps)
	}
	checkBlobs(t, dir)
}

// Wrong bytes, or too few, fail Commit with errdefs.ErrFailedPrecondition
// and leave nothing under blobs/; the same ref then writes the right
// bytes. The same through the exporter.
func TestWrongBytesLeaveNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	data := []byte("the right bytes")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	for name, wrong := range map[string][]byte{
		"other bytes": []byte("the wrong bytes"),
		"fewer bytes": data[:5],
		"more bytes":  append(append([]byte(nil), data...), '!'),
	} {
		// Commit with the descriptor's size and digest, and with none:
		// the descriptor given to Writer is checked all the same.
		for _, commit := range []ocispec.Descriptor{desc, {}} {
			w, err := s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(desc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(wrong); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(ctx, commit.Size, commit.Digest); !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("%s: Commit = %v, want failed precondition", name, err)
			}
			w.Close()
			if got := blobFiles(t, dir); len(got) != 0 {
				t.Fatalf("%s: blobs/ holds %v after a failed Commit", name, got)
			}
		}
	}
	if err := content.WriteBlob(ctx, s, "ref", bytes.NewReader(data), desc); err != nil {
		t.Fatalf("the right bytes after wrong ones: %v", err)
	}
	if got := blobFiles(t, dir); len(got) != 1 {
		t.Fatalf("blobs/ holds %v, want the blob", got)
	}

	// The exporter, from a provider that serves other bytes under a
	// layer's digest, fails and leaves nothing; a good provider then
	// exports.
	dir2 := t.TempDir()
	s2 := openT(t, dir2)
	good := &memProvider{blobs: map[digest.Digest][]byte{}}
	layer := good.add(blobData(1, 5))
	bad := &memProvider{blobs: map[digest.Digest][]byte{layer.Digest: bytes.ToUpper(blobData(1, 5))}}
	export := func(p content.Provider) error {
		e, err := remotecache.NewExporter(s2)
		if err != nil {
			t.Fatal(err)
		}
		res := remotecache.Result{CreatedAt: time.Unix(1000, 0).UTC(), Remote: &remotecache.Remote{Descriptors: []ocispec.Descriptor{layer}, Provider: p}}
		if _, _, err := e.Add(digest.FromString("step"), nil, []remotecache.Result{res}); err != nil {
			t.Fatal(err)
		}
		_, err = e.Finalize(ctx)
		return err
	}
	if err := export(bad); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("export of wrong bytes = %v, want failed precondition", err)
	}
	if got := blobFiles(t, dir2); len(got) != 0 {
		t.Fatalf("blobs/ holds %v after an export of wrong bytes", got)
	}
	if err := export(good); err != nil {
		t.Fatalf("export after the failed one: %v", err)
	}
	if got := checkBlobs(t, dir2); len(got) != 0 {
		t.Fatalf("temp files %v", got)
	}
}

// A Prune through a Store keeps the temp files of that Store's own writes
// in progress (nothing else can be writing: Prune waits until no other
// Store is open) and removes every other temp file.
func TestPruneKeepsOwnWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	w := writeString(t, s, "live", "in progress")
	stale := filepath.Join(dir, "blobs", "sha256", ".tmp-"+digest.FromString("x").Encoded()+"-123")
	if err := os.WriteFile(stale, []byte("left by a killed writer"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ingests != 1 {
		t.Fatalf("Prune removed %d unfinished writes, want 1 (the stale one)", rep.Ingests)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale temp file after Prune: %v", err)
	}
	if err := w.Commit(ctx, 0, digest.FromString("in progress")); err != nil {
		t.Fatalf("Commit of the write Prune kept: %v", err)
	}
}

// stuckExport exports cache n: two small blobs of its own that commit and
// three of 1.5 MiB whose reads past the first MiB never return, so that
// their temp files hold a MiB each when the process is killed.
func stuckExport(ctx context.Context, dir string, n int) error {
	s, err := ocilayout.Open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	p := &memProvider{blobs: map[digest.Digest][]byte{}, stuck: true}
	e, err := remotecache.NewExporter(s, remotecache.WithConcurrency(2))
	if err != nil {
		return err
	}
	var chain []ocispec.Descriptor
	var prev remotecache.Record
	for i := range 5 {
		dt := blobData(n, 4+i)
		if i >= 2 {
			dt = bytes.Repeat([]byte(fmt.Sprintf("cache %d big blob %d\n", n, i)), 3<<19/20)
		}
		chain = append(chain, p.add(dt))
		var deps [][]remotecache.Link
		if prev != nil {
			deps = [][]remotecache.Link{{{Src: prev}}}
		}
		res := remotecache.Result{CreatedAt: time.Unix(int64(1000+i), 0).UTC(), Remote: &remotecache.Remote{Descriptors: append([]ocispec.Descriptor(nil), chain...), Provider: p}}
		if prev, _, err = e.Add(digest.FromString(fmt.Sprint("stuck ", n, " step ", i)), deps, []remotecache.Result{res}); err != nil {
			return err
		}
	}
	_, err = e.Finalize(ctx)
	return fmt.Errorf("the stuck export finished: %v", err)
}

// A process killed (SIGKILL) in the middle of writing blobs leaves temp
// files and whole blobs, nothing torn; the layout opens and verifies,
// Prune removes the temp files (a dry run only counts them) and the
// untagged blobs, and the export then completes.
func TestKilledWriteLeavesTempFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL")
	}
	ctx := context.Background()
	dir := t.TempDir()
	old := exportT(t, dir, 100, "old")
	before := len(blobFiles(t, dir))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OCILAYOUT_TEST_ROLE=stuck-export", "OCILAYOUT_TEST_DIR="+dir, "OCILAYOUT_TEST_N=7")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once two big blobs are each a MiB into their temp files.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := 0
		for _, p := range blobTemps(dir) {
			if fi, err := os.Stat(p); err == nil && fi.Size() >= 1<<20 {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the export never got stuck:\n%s", &out)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	temps := checkBlobs(t, dir)
	if len(temps) != 2 {
		t.Fatalf("temp files after the kill: %v, want the two stuck writes", temps)
	}
	// The layers are copied in the order of their digests: of the two
	// small ones, none, one or both committed before the big ones stuck.
	committed := len(blobFiles(t, dir)) - len(temps) - before
	s := openT(t, dir)
	if got, err := s.Resolve(ctx, "old"); err != nil || got.Digest != old.Digest {
		t.Fatalf("old tag after a kill: %v, %v", got, err)
	}
	verifyAll(t, s)
	dry, err := s.Prune(ctx, ocilayout.WithDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if dry.Ingests != 2 || len(blobTemps(dir)) != 2 {
		t.Fatalf("dry run: %d unfinished writes reported, %d temp files left; want 2 and 2", dry.Ingests, len(blobTemps(dir)))
	}
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The export's config and manifest were never written: its
	// committed blobs are untagged.
	if rep.Ingests != 2 || len(rep.Blobs) != committed {
		t.Fatalf("Prune removed %d unfinished writes and %v; want 2 and the %d untagged blobs", rep.Ingests, rep.Blobs, committed)
	}
	if temps := checkBlobs(t, dir); len(temps) != 0 {
		t.Fatalf("temp files after Prune: %v", temps)
	}
	verifyAll(t, s)
	s.Close()
	if _, err := exportAndTag(ctx, dir, 7, 0, "after"); err != nil {
		t.Fatalf("export after a kill: %v", err)
	}
	verifyAll(t, openT(t, dir))
}

// sameBlob is the blob writeSameBlob writes in every process: 8 MiB.
func sameBlob() ([]byte, ocispec.Descriptor) {
	dt := bytes.Repeat([]byte("one blob, many writers\n"), 8<<20/23)
	return dt, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
}

// writeSameBlob writes sameBlob into the layout at dir and, once every
// process of the test has written it (each leaves a file in
// OCILAYOUT_TEST_SYNC and waits for OCILAYOUT_TEST_PROCS of them),
// commits it. It prints "committed" or "exists".
func writeSameBlob(ctx context.Context, dir string, n int) error {
	marks := os.Getenv("OCILAYOUT_TEST_SYNC")
	procs, _ := strconv.Atoi(os.Getenv("OCILAYOUT_TEST_PROCS"))
	s, err := ocilayout.Open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	dt, desc := sameBlob()
	w, err := content.OpenWriter(ctx, s, content.WithRef("same"), content.WithDescriptor(desc))
	if err != nil {
		return err
	}
	defer w.Close()
	for off := 0; off < len(dt); off += 1 << 20 {
		if _, err := w.Write(dt[off:min(off+1<<20, len(dt))]); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(marks, strconv.Itoa(n)), nil, 0o644); err != nil {
		return err
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Millisecond) {
		if es, _ := os.ReadDir(marks); len(es) >= procs {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the other writers never came")
		}
	}
	switch err := w.Commit(ctx, desc.Size, desc.Digest); {
	case err == nil:
		fmt.Println("committed")
	case errdefs.IsAlreadyExists(err):
		fmt.Println("exists")
	default:
		return err
	}
	return nil
}

// Processes that write one blob at once, committing together, all
// succeed (committed, or found it there), and the blob is whole at every
// moment a reader looks: no torn blob, no temp file left.
func TestProcessesWriteOneBlob(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir).Close()
	dt, desc := sameBlob()
	const procs, rounds = 4, 3
	outcomes := map[string]int{}
	for round := range rounds {
		marks := t.TempDir()
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for i := range procs {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "OCILAYOUT_TEST_ROLE=same-blob", "OCILAYOUT_TEST_DIR="+dir, "OCILAYOUT_TEST_N="+strconv.Itoa(i),
				"OCILAYOUT_TEST_SYNC="+marks, "OCILAYOUT_TEST_PROCS="+strconv.Itoa(procs))
			out := &bytes.Buffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, outs = append(cmds, cmd), append(outs, out)
		}
		// Read the blob over and over while they commit.
		stop := make(chan struct{})
		var reads int
		var readErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			p := filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := os.ReadFile(p)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				} else if err != nil {
					readErr = err
					return
				}
				reads++
				if !bytes.Equal(got, dt) {
					readErr = fmt.Errorf("read %d: %d bytes, digest %s: a torn blob", reads, len(got), digest.FromBytes(got))
					return
				}
			}
		})
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("round %d, process %d: %v\n%s", round, i, err, outs[i])
			}
			outcomes[strings.TrimSpace(outs[i].String())]++
		}
		close(stop)
		wg.Wait()
		if readErr != nil {
			t.Fatalf("round %d: %v", round, readErr)
		}
		if got := blobFiles(t, dir); len(got) != 1 || got[0] != "sha256/"+desc.Digest.Encoded() {
			t.Fatalf("round %d: blobs/ holds %v, want the blob alone", round, got)
		}
		checkBlobs(t, dir)
		t.Logf("round %d: the blob read whole %d times", round, reads)
		// The next round writes it anew.
		if err := os.Remove(filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("outcomes of %d writes: %v", procs*rounds, outcomes)
	if outcomes["committed"] < rounds || outcomes["committed"]+outcomes["exists"] != procs*rounds {
		t.Fatalf("outcomes %v: want every write committed or found there, at least one committed per round", outcomes)
	}
}
