package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
)

// The body of ExampleNewExporter is the usage example in README.md;
// TestREADMEUsage keeps the two the same.
func ExampleNewExporter() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "remotecache-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The build's layer blobs, in a content store of its own.
	src, err := local.NewStore(filepath.Join(dir, "build"))
	if err != nil {
		log.Fatal(err)
	}
	var layers []ocispec.Descriptor
	for _, blob := range []string{"base layer", "app layer"} {
		desc := ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageLayer,
			Digest:    digest.FromString(blob),
			Size:      int64(len(blob)),
		}
		if err := content.WriteBlob(ctx, src, blob, strings.NewReader(blob), desc); err != nil {
			log.Fatal(err)
		}
		layers = append(layers, desc)
	}

	// The cache goes to another store: here a directory, or a registry.
	dst, err := local.NewStore(filepath.Join(dir, "cache"))
	if err != nil {
		log.Fatal(err)
	}
	exp, err := remotecache.NewExporter(dst)
	if err != nil {
		log.Fatal(err)
	}

	// Add each record of the cache graph, dependencies first.
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	base, _, err := exp.Add(digest.FromString("image docker.io/library/alpine"), nil, []remotecache.Result{{
		CreatedAt: created,
		Remote:    &remotecache.Remote{Descriptors: layers[:1], Provider: src},
	}})
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = exp.Add(digest.FromString("exec make"), [][]remotecache.Link{{{Src: base}}}, []remotecache.Result{{
		CreatedAt: created,
		Remote:    &remotecache.Remote{Descriptors: layers, Provider: src},
	}})
	if err != nil {
		log.Fatal(err)
	}

	// Write layers, config and manifest; get the manifest's descriptor.
	resp, err := exp.Finalize(ctx)
	if err != nil {
		log.Fatal(err)
	}
	desc, ok, err := remotecache.ResponseManifest(resp)
	if err != nil {
		log.Fatal(err)
	}
	if !ok {
		log.Fatal("nothing exported")
	}
	dt, err := content.ReadBlob(ctx, dst, desc)
	if err != nil {
		log.Fatal(err)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(dt, &manifest); err != nil {
		log.Fatal(err)
	}
	fmt.Println(desc.MediaType)
	fmt.Println(manifest.Config.MediaType)
	fmt.Println(len(manifest.Layers), "layers")
	// Output:
	// application/vnd.oci.image.manifest.v1+json
	// application/vnd.buildkit.cacheconfig.v0
	// 2 layers
}

func ExampleCacheChains_Marshal() {
	layer := func(s string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(s), Size: int64(len(s))}
	}
	base, app := layer("base"), layer("app")
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	cc := remotecache.NewCacheChains()
	img, _, err := cc.Add(digest.FromString("image"), nil, []remotecache.Result{{
		CreatedAt: created,
		Remote:    &remotecache.Remote{Descriptors: []ocispec.Descriptor{base}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	ctxDir, _, err := cc.Add(digest.FromString("local context"), nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Two input slots: the image, and the build context through a selector.
	_, _, err = cc.Add(digest.FromString("exec make"), [][]remotecache.Link{
		{{Src: img}},
		{{Src: ctxDir, Selector: "/src"}},
	}, []remotecache.Result{{
		CreatedAt: created.Add(time.Minute),
		Remote:    &remotecache.Remote{Descriptors: []ocispec.Descriptor{base, app}},
	}})
	if err != nil {
		log.Fatal(err)
	}

	config, _, err := cc.Marshal(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	dt, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(dt))
	// Output:
	// {
	//   "layers": [
	//     {
	//       "blob": "sha256:a172cedcae47474b615c54d510a5d84a8dea3032e958587430b413538be3f333",
	//       "parent": 1
	//     },
	//     {
	//       "blob": "sha256:cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2",
	//       "parent": -1
	//     }
	//   ],
	//   "records": [
	//     {
	//       "digest": "sha256:002e54c7462f145427c45a6cfde148008c28f287d62e0b53160c04907ed392e7"
	//     },
	//     {
	//       "layers": [
	//         {
	//           "layer": 1,
	//           "createdAt": "2025-01-02T03:04:05Z"
	//         }
	//       ],
	//       "digest": "sha256:6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d"
	//     },
	//     {
	//       "layers": [
	//         {
	//           "layer": 0,
	//           "createdAt": "2025-01-02T03:05:05Z"
	//         }
	//       ],
	//       "digest": "sha256:d714661790c35e644b32d7f255b464cb2324cf19cb4d235216769aeea72361dc",
	//       "inputs": [
	//         [
	//           {
	//             "link": 1
	//           }
	//         ],
	//         [
	//           {
	//             "selector": "/src",
	//             "link": 0
	//           }
	//         ]
	//       ]
	//     }
	//   ]
	// }
}

// TestREADMEUsage checks that the usage example in README.md is the body of
// ExampleNewExporter, so that the README shows code that runs.
func TestREADMEUsage(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := bytes.Cut(src, []byte("func ExampleNewExporter() {\n"))
	if !ok {
		t.Fatal("example_test.go: no ExampleNewExporter")
	}
	body, _, ok = bytes.Cut(body, []byte("\t// Output:\n"))
	if !ok {
		t.Fatal("example_test.go: ExampleNewExporter has no Output comment")
	}
	if !bytes.Contains(readme, body) {
		t.Errorf("README.md does not contain the body of ExampleNewExporter, up to its Output comment; copy it from example_test.go:\n%s", body)
	}
}
