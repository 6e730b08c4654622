package azbtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/cputime"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// The account of every Azurite: its one built-in account, with the
// well-known key of Azurite's README (no secret).
const (
	account    = "devstoreaccount1"
	accountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteVersion is the version the tests are made for, and the one CI
// installs.
const azuriteVersion = "3.37.0"

// installHint says how to get Azurite where the tests look for it.
const installHint = "Azurite (the blob service of the azurite npm package) is needed: " +
	"install it at the repository's root with `npm install --prefix .cache/azurite azurite@" + azuriteVersion + "` " +
	"(bash .ci/run does), or set AZURITE_BIN to its azurite-blob, or AZURITE_DIR to the directory holding node_modules/.bin/azurite-blob"

func TestMain(m *testing.M) {
	// No test may use the Azure settings of whoever runs it.
	for _, k := range []string{azbstore.EnvConnectionString, "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
		"AZURE_FEDERATED_TOKEN_FILE", "BUILDKIT_AZURE_STORAGE_ACCOUNT_URL", "BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME",
		"BUILDKIT_AZURE_STORAGE_CONTAINER", "BUILDKIT_AZURE_STORAGE_PREFIX"} {
		os.Unsetenv(k)
	}
	cachetest.QuietLogs()
	code := m.Run()
	stopAzurite()
	os.Exit(code)
}

// findAzurite returns the azurite-blob to run: $AZURITE_BIN, else
// node_modules/.bin/azurite-blob under $AZURITE_DIR, else under the
// repository's .cache/azurite.
func findAzurite() (string, error) {
	if p := os.Getenv("AZURITE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AZURITE_BIN=%s: %v", p, err)
		}
		return p, nil
	}
	dir := os.Getenv("AZURITE_DIR")
	if dir == "" {
		root, err := cachetest.Root()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache", "azurite")
	}
	p := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no %s", p)
	}
	return p, nil
}

// azurite is Azurite's blob service, listening on 127.0.0.1, one for the
// package: each test has containers of its own.
type azurite struct {
	URL string // http://127.0.0.1:PORT, the service (the account is its first path element)
	bin string
	dir string // --location
	cmd *exec.Cmd

	exited chan struct{}
	out    *cachetest.SyncBuffer
}

var (
	server     *azurite
	serverErr  error
	serverOnce sync.Once
)

// startAzurite returns the package's Azurite, started at its first call.
// Without Azurite, the test fails under CI (with $CI set) and is skipped
// elsewhere, saying how to install it.
func startAzurite(t testing.TB) *azurite {
	t.Helper()
	serverOnce.Do(func() {
		bin, err := findAzurite()
		if err != nil {
			serverErr = fmt.Errorf("%v. %s", err, installHint)
			return
		}
		server, serverErr = launch(bin)
	})
	if serverErr != nil {
		if os.Getenv("CI") == "" && strings.Contains(serverErr.Error(), installHint) {
			t.Skip(serverErr)
		}
		t.Fatal(serverErr)
	}
	select {
	case <-server.exited:
		t.Fatalf("Azurite exited; its output:\n%s", server.output())
	default:
	}
	return server
}

// launch starts Azurite on a free port of 127.0.0.1 and a temporary
// directory, and waits until it answers.
func launch(bin string) (*azurite, error) {
	dir, err := os.MkdirTemp("", "azbtest-azurite-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		addr, err := objstoretest.FreePort()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		// --disableTelemetry: without it, Azurite does not exit on
		// SIGTERM. --silent: no access log.
		cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", port, "--location", dir,
			"--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent")
		a := &azurite{URL: "http://" + addr, bin: bin, dir: dir, cmd: cmd, exited: make(chan struct{}), out: &cachetest.SyncBuffer{}}
		cmd.Stdout, cmd.Stderr = a.out, a.out
		if err := cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("starting %s: %v", bin, err)
		}
		go func() { cmd.Wait(); close(a.exited) }()
		if err := objstoretest.WaitListening("azurite-blob", addr, a.exited, 60*time.Second); err != nil {
			cmd.Process.Kill()
			<-a.exited
			lastErr = fmt.Errorf("%v; output:\n%s", err, a.output())
			continue // the port may have been taken meanwhile
		}
		return a, nil
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("starting Azurite: %v", lastErr)
}

// stopAzurite stops the package's Azurite, if it was started, with
// SIGTERM (a kill if it does not exit within 10s), and removes its files.
func stopAzurite() {
	if server == nil {
		return
	}
	server.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-server.exited:
	case <-time.After(10 * time.Second):
		server.cmd.Process.Kill()
		<-server.exited
	}
	os.RemoveAll(server.dir)
}

// output returns what Azurite printed so far.
func (a *azurite) output() string {
	return a.out.String()
}

// cpu returns the user and system CPU time Azurite (a node process) has
// used, from /proc (Linux; 0 elsewhere), in clock ticks of 10 ms.
func (a *azurite) cpu() time.Duration {
	return cputime.Of(a.cmd.Process.Pid)
}

// connectionString is the connection string of the account at service
// (Azurite's URL, or a proxy's).
func connectionString(service string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + account + ";AccountKey=" + accountKey + ";BlobEndpoint=" + service + "/" + account + ";"
}

// clientOptions are the SDK options of every client of the tests: quick
// retries (the SDK's first wait is 800ms), and a transport of the test's
// own, whose connections are closed when it ends.
func clientOptions(t testing.TB, retries int32) *azblob.ClientOptions {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry:     policy.RetryOptions{MaxRetries: retries, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond},
		Transport: &http.Client{Transport: tr},
	}}
}

// client returns a plain SDK client of the account at service, for the
// tests' own requests.
func client(t testing.TB, service string) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(connectionString(service), clientOptions(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// env is a container of its own in the package's Azurite, behind a
// counting proxy of the test's own.
type env struct {
	az        *azurite
	proxy     *proxy
	container string
	admin     *container.Client // straight to Azurite, not counted
}

var containerSeq atomic.Int64

// containerName makes a container name of t's name, unique in the
// package's Azurite.
func containerName(t testing.TB) string {
	name := strings.ToLower(t.Name())
	name = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(name, "-")
	name = fmt.Sprintf("t%d-%s", containerSeq.Add(1), name)
	if len(name) > 60 {
		name = name[:60]
	}
	return strings.TrimRight(name, "-")
}

// newEnv makes a container and a proxy in front of Azurite; with
// noContainer, only names the container, which does not exist.
func newEnv(t testing.TB, noContainer ...bool) *env {
	t.Helper()
	az := startAzurite(t)
	e := &env{az: az, container: containerName(t)}
	e.admin = client(t, az.URL).ServiceClient().NewContainerClient(e.container)
	if len(noContainer) == 0 || !noContainer[0] {
		if _, err := e.admin.Create(context.Background(), nil); err != nil {
			t.Fatalf("creating container: %v", err)
		}
	}
	e.proxy = startProxy(t, az.URL)
	return e
}

// store opens the container through the proxy with a connection string.
func (e *env) store(t testing.TB, opts ...azbstore.Option) *azbstore.Store {
	t.Helper()
	base := []azbstore.Option{
		azbstore.WithConnectionString(connectionString(e.proxy.URL)),
		azbstore.WithClientOptions(clientOptions(t, 3)),
	}
	s, err := azbstore.New(context.Background(), e.container, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// names lists every blob name of the container.
func (e *env) names(t testing.TB) []string {
	t.Helper()
	var names []string
	p := e.admin.NewListBlobsFlatPager(nil)
	for p.More() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}

// blob reads a blob straight from Azurite.
func (e *env) blob(t testing.TB, name string) []byte {
	t.Helper()
	resp, err := e.admin.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	defer resp.Body.Close()
	dt, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}
