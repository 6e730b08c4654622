package ocilayout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/ocilayout"
)

func TestMain(m *testing.M) {
	cachetest.QuietLogs()
	if role := os.Getenv("OCILAYOUT_TEST_ROLE"); role != "" {
		if err := helperProcess(role); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperProcess is the body of the child processes the tests start.
func helperProcess(role string) error {
	ctx := context.Background()
	dir := os.Getenv("OCILAYOUT_TEST_DIR")
	n, _ := strconv.Atoi(os.Getenv("OCILAYOUT_TEST_N"))
	switch role {
	case "export":
		// Export a cache of its own plus blobs shared with the others, and
		// tag it both under its own name and under a shared one.
		_, err := exportAndTag(ctx, dir, n, 0, "proc-"+strconv.Itoa(n), "shared")
		return err
	case "tagger":
		// Export a cache, then move tags between it and the one tagged
		// "first".
		desc, err := exportAndTag(ctx, dir, n, 0, "w"+strconv.Itoa(n), "shared")
		if err != nil {
			return err
		}
		s, err := ocilayout.Open(dir)
		if err != nil {
			return err
		}
		defer s.Close()
		first, err := s.Resolve(ctx, "first")
		if err != nil {
			return err
		}
		for i := range 24 {
			name := []string{"w" + strconv.Itoa(n), "shared", "r" + strconv.Itoa(i%4)}[i%3]
			if err := s.Tag(ctx, name, []ocispec.Descriptor{first, desc}[i%2]); err != nil {
				return err
			}
		}
		return nil
	case "index-reader":
		return readIndexLoop(dir)
	case "stuck-export":
		// Export a cache whose big blobs never finish, to be killed.
		return stuckExport(ctx, dir, n)
	case "same-blob":
		// Write the blob every process of the test writes, at once.
		return writeSameBlob(ctx, dir, n)
	case "slow-export":
		// Export slowly, to be killed on the way.
		_, err := exportAndTag(ctx, dir, n, 20*time.Millisecond, "slow")
		return err
	}
	return fmt.Errorf("unknown role %q", role)
}

// readIndexLoop parses dir's index.json over and over until stdin is
// closed, and checks every tag it names is whole: every blob its manifest
// reaches is in blobs/ with the size its descriptor gives. It reads the
// files itself, not through ocilayout, and says on stdout how many reads
// it made and how many distinct versions of index.json it saw.
func readIndexLoop(dir string) error {
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	blob := func(d ocispec.Descriptor) (string, error) {
		if err := d.Digest.Validate(); err != nil {
			return "", err
		}
		p := filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		if fi.Size() != d.Size {
			return "", fmt.Errorf("blob %s: %d bytes, descriptor says %d", d.Digest, fi.Size(), d.Size)
		}
		return p, nil
	}
	var check func(d ocispec.Descriptor) error
	check = func(d ocispec.Descriptor) error {
		p, err := blob(d)
		if err != nil {
			return err
		}
		if d.MediaType != ocispec.MediaTypeImageManifest && d.MediaType != ocispec.MediaTypeImageIndex {
			return nil
		}
		dt, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if digest.FromBytes(dt) != d.Digest {
			return fmt.Errorf("manifest %s: content has digest %s", d.Digest, digest.FromBytes(dt))
		}
		var m struct {
			Config    *ocispec.Descriptor  `json:"config"`
			Layers    []ocispec.Descriptor `json:"layers"`
			Manifests []ocispec.Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(dt, &m); err != nil {
			return fmt.Errorf("manifest %s: %v", d.Digest, err)
		}
		children := append(m.Layers, m.Manifests...)
		if m.Config != nil {
			children = append(children, *m.Config)
		}
		if len(children) == 0 {
			return fmt.Errorf("manifest %s names no blobs", d.Digest)
		}
		for _, c := range children {
			if err := check(c); err != nil {
				return fmt.Errorf("manifest %s: %v", d.Digest, err)
			}
		}
		return nil
	}
	versions := map[digest.Digest]bool{}
	reads := 0
	for {
		select {
		case <-stop:
			fmt.Printf("reads=%d versions=%d\n", reads, len(versions))
			return nil
		default:
		}
		dt, err := os.ReadFile(filepath.Join(dir, "index.json"))
		if err != nil {
			return fmt.Errorf("read %d: %v", reads, err)
		}
		reads++
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil || idx.SchemaVersion != 2 {
			return fmt.Errorf("read %d: index.json is not an index (%v): %q", reads, err, dt)
		}
		if versions[digest.FromBytes(dt)] {
			continue // checked already
		}
		versions[digest.FromBytes(dt)] = true
		for _, d := range idx.Manifests {
			if err := check(d); err != nil {
				return fmt.Errorf("read %d: tag %s: %v", reads, d.Annotations[ocispec.AnnotationRefName], err)
			}
		}
	}
}

// blobData is deterministic content for blob i of cache n; blobs below 4
// are shared by every cache.
func blobData(n, i int) []byte {
	owner := n
	if i < 4 {
		owner = -1
	}
	return bytes.Repeat([]byte(fmt.Sprintf("cache %d blob %d\n", owner, i)), 4096)
}

// memProvider serves blobs from memory, pausing on each read.
type memProvider struct {
	blobs map[digest.Digest][]byte
	pause time.Duration
	stuck bool // reads past the first MiB of a blob never return
}

func (p *memProvider) add(dt []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	p.blobs[d.Digest] = dt
	return d
}

func (p *memProvider) ReaderAt(_ context.Context, d ocispec.Descriptor) (content.ReaderAt, error) {
	dt, ok := p.blobs[d.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return &memReader{Reader: bytes.NewReader(dt), pause: p.pause, stuck: p.stuck}, nil
}

type memReader struct {
	*bytes.Reader
	pause time.Duration
	stuck bool // reads past the first MiB never return
}

func (r *memReader) ReadAt(b []byte, off int64) (int, error) {
	time.Sleep(r.pause)
	if r.stuck && off >= 1<<20 {
		select {} // until the process is killed
	}
	return r.Reader.ReadAt(b, off)
}

func (r *memReader) Close() error { return nil }

// exportT runs exportAndTag without pauses and fails t on error.
func exportT(t *testing.T, dir string, n int, names ...string) ocispec.Descriptor {
	t.Helper()
	desc, err := exportAndTag(context.Background(), dir, n, 0, names...)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

// exportAndTag exports cache n (a chain of 12 records, one layer each)
// into the layout at dir and tags it with each name.
func exportAndTag(ctx context.Context, dir string, n int, pause time.Duration, names ...string) (ocispec.Descriptor, error) {
	s, err := ocilayout.Open(dir)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer s.Close()
	p := &memProvider{blobs: map[digest.Digest][]byte{}, pause: pause}
	e, err := remotecache.NewExporter(s, remotecache.WithConcurrency(2))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var chain []ocispec.Descriptor
	var prev remotecache.Record
	for i := range 12 {
		chain = append(chain, p.add(blobData(n, i)))
		var deps [][]remotecache.Link
		if prev != nil {
			deps = [][]remotecache.Link{{{Src: prev}}}
		}
		res := remotecache.Result{CreatedAt: time.Unix(int64(1000+i), 0).UTC(), Remote: &remotecache.Remote{Descriptors: append([]ocispec.Descriptor(nil), chain...), Provider: p}}
		prev, _, err = e.Add(digest.FromString(fmt.Sprint("cache ", n, " step ", i)), deps, []remotecache.Result{res})
		if err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	desc, err := cachetest.Finalize(ctx, e)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, name := range names {
		if err := s.Tag(ctx, name, desc); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	return desc, nil
}

// blobTemps lists the temp files of unfinished writes in the layout at dir.
func blobTemps(dir string) []string {
	tmps, _ := filepath.Glob(filepath.Join(dir, "blobs", "*", ".tmp-*"))
	return tmps
}

func openT(t *testing.T, dir string) *ocilayout.Store {
	t.Helper()
	s, err := ocilayout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// verifyAll checks that every tag resolves and its cache verifies.
func verifyAll(t *testing.T, s *ocilayout.Store) []string {
	t.Helper()
	ctx := context.Background()
	tags, err := s.Tags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		desc, err := s.Resolve(ctx, tag)
		if err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
		problems, err := remotecache.Verify(ctx, s, desc)
		if err != nil || len(problems) > 0 {
			t.Fatalf("tag %s: verify: %v %v", tag, problems, err)
		}
		if err := remotecache.Import(ctx, s, desc, remotecache.NewCacheChains()); err != nil {
			t.Fatalf("tag %s: import: %v", tag, err)
		}
	}
	return tags
}

func TestOpenMakesLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "cache")
	s := openT(t, dir)
	layout, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil || string(layout) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout = %q, %v", layout, err)
	}
	var idx ocispec.Index
	dt, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil || json.Unmarshal(dt, &idx) != nil || idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("index.json = %s, %v", dt, err)
	}
	if tags, err := s.Tags(context.Background()); err != nil || len(tags) != 0 {
		t.Fatalf("tags of a new layout = %v, %v", tags, err)
	}
	// Opening again keeps what is there.
	openT(t, dir)

	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "oci-layout"), []byte(`{"imageLayoutVersion":"9"}`), 0o644)
	if _, err := ocilayout.Open(bad); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "oci-layout") {
		t.Fatalf("Open(bad layout) = %v", err)
	}
}

func TestTagResolve(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d1 := exportT(t, dir, 1, "latest")
	s := openT(t, dir)
	got, err := s.Resolve(ctx, "latest")
	if err != nil || got.Digest != d1.Digest || got.Annotations[ocispec.AnnotationRefName] != "latest" {
		t.Fatalf("Resolve(latest) = %+v, %v", got, err)
	}
	// Moving the tag replaces the entry.
	d2 := exportT(t, dir, 2, "latest", "other")
	if got, _ := s.Resolve(ctx, "latest"); got.Digest != d2.Digest {
		t.Fatalf("latest = %s after moving, want %s", got.Digest, d2.Digest)
	}
	var idx ocispec.Index
	dt, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(dt, &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("index.json has %d entries, want 2 (latest, other): %s", len(idx.Manifests), dt)
	}
	if tags, _ := s.Tags(ctx); strings.Join(tags, ",") != "latest,other" {
		t.Fatalf("tags = %v", tags)
	}
	if _, err := s.Resolve(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("Resolve(nope) = %v", err)
	}
	// Tagging again what a tag names already leaves index.json as it is.
	before, err := os.Stat(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "latest", d2); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(filepath.Join(dir, "index.json")); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("index.json replaced by a tag that did not move (%v)", err)
	}
	// A manifest whose blobs are not all there cannot be tagged.
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("x"), Size: 1}
	if err := s.Tag(ctx, "latest", missing); !errdefs.IsNotFound(err) {
		t.Fatalf("Tag(missing manifest) = %v", err)
	}
	if got, _ := s.Resolve(ctx, "latest"); got.Digest != d2.Digest {
		t.Fatal("a failed Tag moved the tag")
	}
	if err := s.Untag(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "other"); !errdefs.IsNotFound(err) {
		t.Fatalf("Resolve(untagged) = %v", err)
	}
	verifyAll(t, s)
}

func TestTagRefusesIncompleteManifest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	desc := exportT(t, dir, 1)
	s := openT(t, dir)
	m, err := remotecache.ReadManifest(ctx, s, desc)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, m.Layers[3].Digest); err != nil {
		t.Fatal(err)
	}
	err = s.Tag(ctx, "latest", desc)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), m.Layers[3].Digest.String()) {
		t.Fatalf("Tag with a layer missing = %v, want not found naming %s", err, m.Layers[3].Digest)
	}
	if tags, _ := s.Tags(ctx); len(tags) != 0 {
		t.Fatalf("tags = %v", tags)
	}
}

func TestResolveContainerdName(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	desc := exportT(t, dir, 1)
	desc.Annotations = map[string]string{"io.containerd.image.name": "docker.io/library/cache:v1"}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	s := openT(t, dir)
	got, err := s.Resolve(ctx, "docker.io/library/cache:v1")
	if err != nil || got.Digest != desc.Digest {
		t.Fatalf("Resolve(containerd name) = %v, %v", got, err)
	}
}

// Eight processes export into one directory and tag it at once; every
// tag resolves and verifies afterwards.
func TestConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir).Close()
	const procs = 8
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "OCILAYOUT_TEST_ROLE=export", "OCILAYOUT_TEST_DIR="+dir, "OCILAYOUT_TEST_N="+strconv.Itoa(i))
		outs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	s := openT(t, dir)
	tags := verifyAll(t, s)
	if len(tags) != procs+1 {
		t.Fatalf("tags %v, want proc-0..proc-7 and shared", tags)
	}
	if tmps := blobTemps(dir); len(tmps) != 0 {
		t.Fatalf("unfinished writes left: %v", tmps)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".index.json.tmp-*"))
	if len(tmps) != 0 {
		t.Fatalf("temp files left: %v", tmps)
	}
}

// Readers in other processes parse index.json over and over while eight
// processes export and tag: none ever sees a torn index.json or a tag
// whose manifest reaches a blob not (yet) in the layout.
func TestIndexNeverTorn(t *testing.T) {
	dir := t.TempDir()
	if _, err := exportAndTag(context.Background(), dir, 99, 0, "first"); err != nil {
		t.Fatal(err)
	}
	start := func(role string, n int) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "OCILAYOUT_TEST_ROLE="+role, "OCILAYOUT_TEST_DIR="+dir, "OCILAYOUT_TEST_N="+strconv.Itoa(n))
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		return cmd, out
	}
	const readers, writers = 2, 8
	type reader struct {
		cmd   *exec.Cmd
		out   *bytes.Buffer
		stdin io.WriteCloser
	}
	var rs []reader
	for i := range readers {
		cmd, out := start("index-reader", i)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, reader{cmd, out, stdin})
	}
	defer func() {
		for _, r := range rs {
			r.stdin.Close()
			r.cmd.Wait()
		}
	}()
	var ws []*exec.Cmd
	var wouts []*bytes.Buffer
	for i := range writers {
		cmd, out := start("tagger", i)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ws, wouts = append(ws, cmd), append(wouts, out)
	}
	for i, cmd := range ws {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer %d: %v\n%s", i, err, wouts[i])
		}
	}
	for i, r := range rs {
		r.stdin.Close()
		if err := r.cmd.Wait(); err != nil {
			t.Fatalf("reader %d: %v\n%s", i, err, r.out)
		}
		var reads, versions int
		if _, err := fmt.Sscanf(r.out.String(), "reads=%d versions=%d", &reads, &versions); err != nil {
			t.Fatalf("reader %d said %q", i, r.out)
		}
		t.Logf("reader %d: %d reads, %d versions of index.json", i, reads, versions)
		// The readers must have watched the index change, or they
		// proved nothing.
		if versions < 10 {
			t.Errorf("reader %d saw %d versions of index.json in %d reads; want the writes to overlap the reads", i, versions, reads)
		}
	}
	verifyAll(t, openT(t, dir))
}

// A process killed mid-export leaves a directory that opens, whose old
// tags resolve, and into which a new export completes.
func TestKilledExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := exportT(t, dir, 100, "old")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OCILAYOUT_TEST_ROLE=slow-export", "OCILAYOUT_TEST_DIR="+dir, "OCILAYOUT_TEST_N=7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it has written something of its own.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if len(blobTemps(dir)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the export never started writing")
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	s := openT(t, dir)
	got, err := s.Resolve(ctx, "old")
	if err != nil || got.Digest != old.Digest {
		t.Fatalf("old tag after a kill: %v, %v", got, err)
	}
	if _, err := s.Resolve(ctx, "slow"); !errdefs.IsNotFound(err) {
		t.Fatalf("the killed export's tag exists: %v", err)
	}
	s.Close()
	if _, err := exportAndTag(ctx, dir, 7, 0, "slow"); err != nil {
		t.Fatalf("re-export after a kill: %v", err)
	}
	verifyAll(t, openT(t, dir))
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	exportT(t, dir, 1, "keep")
	exportT(t, dir, 2, "drop")
	s := openT(t, dir)
	if err := s.Untag(ctx, "drop"); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		s.Walk(ctx, func(content.Info) error { n++; return nil })
		return n
	}
	before := count()
	dry, err := s.Prune(ctx, ocilayout.WithDryRun())
	if err != nil {
		t.Fatal(err)
	}
	// Cache 2 has 8 blobs of its own, a config and a manifest.
	if len(dry.Blobs) != 10 || dry.Bytes <= 0 {
		t.Fatalf("dry run would free %d blobs (%d bytes), want 10", len(dry.Blobs), dry.Bytes)
	}
	if count() != before {
		t.Fatal("a dry run removed blobs")
	}
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 10 || rep.Bytes != dry.Bytes || count() != before-10 {
		t.Fatalf("prune freed %d blobs (%d bytes); %d left of %d", len(rep.Blobs), rep.Bytes, count(), before)
	}
	verifyAll(t, s)
}

// A prune started while an export is in progress waits for it: the export
// comes out whole and tagged, and only then is the garbage removed.
func TestPruneRacingExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	exportT(t, dir, 1, "one")
	exported := make(chan error, 1)
	go func() {
		_, err := exportAndTag(ctx, dir, 2, 5*time.Millisecond, "two")
		exported <- err
	}()
	// Let the export get going, then prune from another Store.
	for {
		if len(blobTemps(dir)) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	pruner := openT(t, dir)
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := pruner.Prune(pctx); err != nil {
		t.Fatal(err)
	}
	// The export tags before it closes its Store, and Prune waits for the
	// close: the tag is there as soon as Prune returns.
	if _, err := pruner.Resolve(ctx, "two"); err != nil {
		t.Fatalf("prune returned before the export had tagged: %v", err)
	}
	select {
	case err := <-exported:
		if err != nil {
			t.Fatalf("export: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the export did not finish")
	}
	tags := verifyAll(t, pruner)
	if strings.Join(tags, ",") != "one,two" {
		t.Fatalf("tags %v", tags)
	}
	// A prune bounded by its context gives up while a Store is open.
	other := openT(t, dir)
	_ = other
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := pruner.Prune(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("prune with an open Store = %v, want deadline exceeded", err)
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	desc := exportT(t, dir, 1, "latest")
	os.Remove(filepath.Join(dir, ".remotecache.lock"))
	os.Remove(filepath.Join(dir, "index.json.lock"))
	before, _ := os.ReadDir(dir)
	s, err := ocilayout.Open(dir, ocilayout.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Resolve(ctx, "latest"); err != nil || got.Digest != desc.Digest {
		t.Fatalf("Resolve = %v, %v", got, err)
	}
	if problems, err := remotecache.Verify(ctx, s, desc); err != nil || len(problems) != 0 {
		t.Fatalf("Verify = %v, %v", problems, err)
	}
	for name, err := range map[string]error{
		"tag":    s.Tag(ctx, "x", desc),
		"untag":  s.Untag(ctx, "latest"),
		"delete": s.Delete(ctx, desc.Digest),
		"write":  func() error { _, err := s.Writer(ctx, content.WithRef("x")); return err }(),
		"prune":  func() error { _, err := s.Prune(ctx); return err }(),
	} {
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s on a read-only store = %v", name, err)
		}
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Fatalf("read-only open changed the directory: %v -> %v", before, after)
	}
	if _, err := ocilayout.Open(t.TempDir(), ocilayout.WithReadOnly()); !errdefs.IsNotFound(err) {
		t.Fatalf("read-only open of an empty dir = %v", err)
	}
}

// A layout that Open has just made has no blobs/ yet: Prune finds nothing
// to remove rather than failing.
func TestPruneNewLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "blobs")); !os.IsNotExist(err) {
		t.Fatalf("a new layout has blobs/ (%v): the test needs one without", err)
	}
	for _, opts := range [][]ocilayout.PruneOption{{ocilayout.WithDryRun()}, nil} {
		rep, err := s.Prune(ctx, opts...)
		if err != nil {
			t.Fatalf("Prune(%d options) of a new layout: %v", len(opts), err)
		}
		if len(rep.Blobs) != 0 || rep.Bytes != 0 || rep.Ingests != 0 {
			t.Fatalf("Prune of a new layout = %+v, want nothing removed", rep)
		}
	}
	if tags, err := s.Tags(ctx); err != nil || len(tags) != 0 {
		t.Fatalf("tags after prune = %v, %v", tags, err)
	}
}

// An option that fails makes Prune fail, naming the operation and
// wrapping the option's error, before it removes anything.
func TestPruneOptionFails(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	untagged := writeUntagged(t, s, "reached by no tag")
	cause := errors.New("no such option")
	rep, err := s.Prune(ctx, ocilayout.WithDryRun(), ocilayout.FailingPruneOption(cause))
	if !errors.Is(err, cause) || !strings.HasPrefix(err.Error(), "prune: ") {
		t.Fatalf("Prune with a failing option = %v, want \"prune: \" and %v", err, cause)
	}
	if len(rep.Blobs) != 0 {
		t.Fatalf("Prune with a failing option reported %v", rep.Blobs)
	}
	if _, err := s.Info(ctx, untagged.Digest); err != nil {
		t.Fatalf("Prune with a failing option removed a blob: %v", err)
	}
	// Without it, Prune runs.
	if rep, err := s.Prune(ctx); err != nil || len(rep.Blobs) != 1 {
		t.Fatalf("Prune after = %+v, %v; want the untagged blob removed", rep, err)
	}
}

// A read-only open, reads of every tag and blob and Close change nothing
// in the directory: no entry made, removed, resized or touched, the
// directory itself included (a probe file made and removed again shows in
// its mtime).
func TestReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	desc := exportT(t, dir, 1, "latest", "other")
	var blobs []digest.Digest
	openT(t, dir).Walk(ctx, func(info content.Info) error {
		blobs = append(blobs, info.Digest)
		return nil
	})
	// Let the clock move past the export's last mtime tick, or a probe
	// file made and removed within that tick would leave no trace.
	time.Sleep(20 * time.Millisecond)
	before := cachetest.Snapshot(t, dir)

	s, err := ocilayout.Open(dir, ocilayout.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := s.Tags(ctx); err != nil || strings.Join(tags, ",") != "latest,other" {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
	if got, err := s.Resolve(ctx, "latest"); err != nil || got.Digest != desc.Digest {
		t.Fatalf("Resolve = %v, %v", got, err)
	}
	for _, d := range blobs {
		info, err := s.Info(ctx, d)
		if err != nil || info.Digest != d || info.Size <= 0 {
			t.Fatalf("Info(%s) = %+v, %v", d, info, err)
		}
		dt, err := content.ReadBlob(ctx, s, ocispec.Descriptor{Digest: d, Size: info.Size})
		if err != nil || digest.FromBytes(dt) != d {
			t.Fatalf("ReadBlob(%s): %d bytes, %v", d, len(dt), err)
		}
	}
	if problems, err := remotecache.Verify(ctx, s, desc); err != nil || len(problems) != 0 {
		t.Fatalf("Verify = %v, %v", problems, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cachetest.Unchanged(t, before, cachetest.Snapshot(t, dir))
}

// A read-only Store answers not found for a blob the layout lacks, and
// refuses a digest that is no digest before it reaches the file system.
func TestReadOnlyBlobs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	desc := exportT(t, dir, 1, "latest")
	s, err := ocilayout.Open(dir, ocilayout.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	missing := digest.FromString("not in the layout")
	if _, err := s.Info(ctx, missing); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("Info(missing) = %v, want not found naming it", err)
	}
	if _, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: missing}); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("ReaderAt(missing) = %v, want not found naming it", err)
	}
	for _, bad := range []digest.Digest{"sha256:../../index.json", "sha256:" + digest.Digest(strings.Repeat("A", 64)), "md5:d41d8cd98f00b204e9800998ecf8427e", ""} {
		if _, err := s.Info(ctx, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Info(%q) = %v, want invalid argument", bad, err)
		}
		if _, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: bad}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ReaderAt(%q) = %v, want invalid argument", bad, err)
		}
	}
	// Something that is not a file where a blob should be is damage, not
	// a missing blob.
	dir2 := filepath.Join(dir, "blobs", "sha256", missing.Encoded())
	if err := os.Mkdir(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, missing); err == nil || errdefs.IsNotFound(err) {
		t.Errorf("Info(a directory) = %v, want an error other than not found", err)
	}
	if _, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: missing}); err == nil || errdefs.IsNotFound(err) {
		t.Errorf("ReaderAt(a directory) = %v, want an error other than not found", err)
	}
	info, err := s.Info(ctx, desc.Digest)
	if err != nil || info.Size != desc.Size {
		t.Fatalf("Info(manifest) = %+v, %v", info, err)
	}
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		t.Fatalf("ReaderAt(manifest).Size() = %d, want %d", ra.Size(), desc.Size)
	}
	var n int
	if err := s.Walk(ctx, func(content.Info) error { n++; return nil }); err != nil || n != 14 {
		t.Fatalf("Walk: %d blobs, %v; want 14", n, err)
	}
	for name, err := range map[string]error{
		"update": func() error { _, err := s.Update(ctx, info); return err }(),
		"status": func() error { _, err := s.ListStatuses(ctx); return err }(),
		"abort":  s.Abort(ctx, "x"),
	} {
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s on a read-only store = %v", name, err)
		}
	}
}

// A Prune that gives up waiting leaves its Store holding off every other
// Store's Prune. (On Linux a failed LOCK_EX|LOCK_NB upgrade of a held
// LOCK_SH drops the LOCK_SH: a Store whose Prune had timed out held no
// lock, and another Store's Prune removed its untagged blobs.)
func TestPruneTimeoutKeepsLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openT(t, dir)
	inProgress := writeUntagged(t, a, "written through a, not yet tagged")
	b := openT(t, dir)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := a.Prune(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a.Prune while b is open = %v, want deadline exceeded", err)
	}
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if rep, err := b.Prune(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b.Prune while a is open, after a's Prune timed out = %+v, %v; want deadline exceeded", rep, err)
	}
	if _, err := b.Info(ctx, inProgress.Digest); err != nil {
		t.Fatalf("a's untagged blob after b's Prune: %v", err)
	}
	// Once a is closed, b's Prune runs, and a's blob (never tagged) goes.
	a.Close()
	rep, err := b.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 1 || rep.Blobs[0].Digest != inProgress.Digest {
		t.Fatalf("b.Prune after a closed removed %v, want %s", rep.Blobs, inProgress.Digest)
	}
	// And b still holds off Prunes after a Prune that ran.
	c := openT(t, dir)
	inProgress = writeUntagged(t, b, "written through b, not yet tagged")
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Prune(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("c.Prune while b is open = %v, want deadline exceeded", err)
	}
	if _, err := c.Info(ctx, inProgress.Digest); err != nil {
		t.Fatalf("b's untagged blob after c's Prune: %v", err)
	}
}

// Two Stores that prune at once would each wait for the other to close.
// One of them is refused at once with errdefs.ErrUnavailable; the other
// runs as soon as the refused one's Store is closed.
func TestConcurrentPrunes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, second := pruneAtOnce(t, ctx, t.TempDir())
	if !errdefs.IsUnavailable(first) {
		t.Fatalf("the first Prune to return = %v, want unavailable", first)
	}
	if second != nil {
		t.Fatalf("the other Prune, once the refused one's Store closed: %v", second)
	}
}

// holdPrune runs a Prune through s and holds it, with the exclusive lock
// taken, until the returned func is called; that func waits for the
// Prune to return.
func holdPrune(t *testing.T, s *ocilayout.Store) (release func()) {
	t.Helper()
	locked, unblock := make(chan struct{}), make(chan struct{})
	restore := ocilayout.SetPruneLockedHook(func() {
		close(locked)
		<-unblock
	})
	done := make(chan error, 1)
	go func() {
		_, err := s.Prune(context.Background())
		done <- err
	}()
	select {
	case <-locked:
	case err := <-done:
		t.Fatalf("Prune returned before taking the lock: %v", err)
	}
	var once bool
	release = func() {
		if once {
			return
		}
		once = true
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("held Prune: %v", err)
		}
		restore()
	}
	t.Cleanup(release)
	return release
}

// OpenContext waits for a Prune in progress only as long as its context
// allows.
func TestOpenContextWhilePruning(t *testing.T) {
	dir := t.TempDir()
	release := holdPrune(t, openT(t, dir))

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// The Prune holds the lock until release: an OpenContext that returns
	// before that with the deadline's error gave up when its context
	// said so.
	err := cachetest.Returns(t, "OpenContext with a 100ms deadline", func() error {
		s, err := ocilayout.OpenContext(short, dir)
		if err == nil {
			s.Close()
		}
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenContext while a Prune holds the lock = %v, want deadline exceeded", err)
	}
	release()
	s, err := ocilayout.OpenContext(context.Background(), dir)
	if err != nil {
		t.Fatalf("OpenContext after the Prune: %v", err)
	}
	s.Close()
}
