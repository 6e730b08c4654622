// Command export builds a small cache graph and exports it with
// remotecache.NewExporter into a containerd local content store on a
// directory. It prints the manifest's descriptor (the "cache.manifest" value
// that Finalize returns) and the directory.
//
//	go run ./examples/export [-dir DIR] [-format image-manifest|oci-index|manifest-list]
//
// Run it twice with the same -dir: the second export finds every blob in the
// store and skips it.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/buildcache/remotecache"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

func main() {
	dir := flag.String("dir", "", "directory to export the cache into (default: a new temporary directory)")
	format := flag.String("format", remotecache.FormatImageManifest.String(), "manifest form: image-manifest, oci-index or manifest-list")
	flag.Parse()
	// containerd's local store warns about fsverity on every directory.
	_ = log.SetLevel("error")
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "export: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	f, err := remotecache.ParseManifestFormat(*format)
	if err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dir, f); err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string, format remotecache.ManifestFormat) error {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "remotecache-export-"); err != nil {
			return err
		}
	}

	// The build's layers live in a store of their own, as they would in a
	// build engine's snapshotter or content store.
	buildDir, err := os.MkdirTemp("", "remotecache-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(buildDir)
	build, err := local.NewStore(buildDir)
	if err != nil {
		return err
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	base, err := writeLayer(ctx, build, created, map[string]string{
		"etc/os-release": "ID=example\n",
	})
	if err != nil {
		return err
	}
	app, err := writeLayer(ctx, build, created.Add(time.Minute), map[string]string{
		"usr/local/bin/app": "#!/bin/sh\necho hello\n",
	})
	if err != nil {
		return err
	}

	store, err := local.NewStore(dir)
	if err != nil {
		return err
	}
	exp, err := remotecache.NewExporter(store,
		remotecache.WithManifestFormat(format),
		remotecache.WithProgress(remotecache.ProgressFunc(printProgress)),
	)
	if err != nil {
		return err
	}

	// The graph of a two-step build: FROM an image, then RUN a command
	// with the build context mounted. Dependencies are added first.
	image, _, err := exp.Add(digest.FromString("source: docker-image://docker.io/library/alpine:3"), nil, []remotecache.Result{{
		CreatedAt: created,
		Remote:    &remotecache.Remote{Descriptors: []ocispec.Descriptor{base}, Provider: build},
	}})
	if err != nil {
		return err
	}
	buildContext, _, err := exp.Add(digest.FromString("source: local://context"), nil, nil)
	if err != nil {
		return err
	}
	_, _, err = exp.Add(digest.FromString("exec: /bin/sh -c make install"), [][]remotecache.Link{
		{{Src: image}},
		{{Src: buildContext, Selector: digest.FromString("context content").String()}},
	}, []remotecache.Result{{
		CreatedAt: created.Add(time.Minute),
		Remote:    &remotecache.Remote{Descriptors: []ocispec.Descriptor{base, app}, Provider: build},
	}})
	if err != nil {
		return err
	}
	// Records keyed by "random:" digests are never exported.
	if _, ok, err := exp.Add("random:0123456789abcdef", nil, nil); err != nil || ok {
		return errors.Errorf("random record: exportable=%t, err=%v", ok, err)
	}

	resp, err := exp.Finalize(ctx)
	if err != nil {
		return err
	}
	fmt.Println(resp[remotecache.ExporterResponseManifestDesc])
	fmt.Println(dir)
	return nil
}

// writeLayer writes a gzipped tar of files into store and returns its
// descriptor, annotated as BuildKit annotates cache layers.
func writeLayer(ctx context.Context, store content.Ingester, created time.Time, files map[string]string) (ocispec.Descriptor, error) {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), ModTime: created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return ocispec.Descriptor{}, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return ocispec.Descriptor{}, err
	}
	var blob bytes.Buffer
	zw := gzip.NewWriter(&blob)
	if _, err := zw.Write(tarball.Bytes()); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, err
	}

	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromBytes(blob.Bytes()),
		Size:      int64(blob.Len()),
		Annotations: map[string]string{
			"containerd.io/uncompressed": digest.FromBytes(tarball.Bytes()).String(),
			"buildkit/createdat":         created.Format(time.RFC3339Nano),
		},
	}
	if err := content.WriteBlob(ctx, store, "layer-"+desc.Digest.String(), bytes.NewReader(blob.Bytes()), desc); err != nil {
		return ocispec.Descriptor{}, errors.Wrapf(err, "writing layer %s", desc.Digest)
	}
	return desc, nil
}

// printProgress reports each step's end on stderr, so that stdout holds
// only the results.
func printProgress(e remotecache.Event) {
	if e.Completed.IsZero() {
		return // the completion, which is never dropped, says it all
	}
	switch {
	case e.Err != nil:
		fmt.Fprintf(os.Stderr, "%s: failed: %v\n", e.ID, e.Err)
	case e.Skipped:
		fmt.Fprintf(os.Stderr, "%s: skipped\n", e.ID)
	default:
		fmt.Fprintf(os.Stderr, "%s: done, %d bytes\n", e.ID, e.Total)
	}
	if e.Warning != "" {
		fmt.Fprintf(os.Stderr, "%s: warning: %s\n", e.ID, e.Warning)
	}
}
