package azblob

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/objstoretest/offline"
)

// response makes the SDK's error for a response of status code with
// error code ("" for none), as the SDK makes it from the response.
func response(t *testing.T, code int, errorCode string) error {
	t.Helper()
	u, _ := url.Parse("http://127.0.0.1:9/devstoreaccount1/c/blobs/sha256:ab?sig=secret")
	resp := &http.Response{
		StatusCode: code,
		Status:     http.StatusText(code),
		Header:     http.Header{},
		Body:       io.NopCloser(strings.NewReader("<Error><Code>" + errorCode + "</Code><Message>m</Message></Error>")),
		Request:    &http.Request{Method: http.MethodHead, URL: u},
	}
	if errorCode != "" {
		resp.Header.Set("x-ms-error-code", errorCode)
	}
	return runtime.NewResponseError(resp)
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code      int
		errorCode string
		class     error
	}{
		{404, "BlobNotFound", errdefs.ErrNotFound},
		{404, "ContainerNotFound", errdefs.ErrNotFound},
		{404, "", errdefs.ErrNotFound},
		{409, "BlobAlreadyExists", errdefs.ErrAlreadyExists},
		{412, "ConditionNotMet", errdefs.ErrFailedPrecondition},
		{403, "AuthenticationFailed", errdefs.ErrUnauthenticated},
		{403, "AuthorizationPermissionMismatch", errdefs.ErrPermissionDenied},
		{403, "", errdefs.ErrPermissionDenied},
		{401, "", errdefs.ErrUnauthenticated},
		{503, "ServerBusy", errdefs.ErrUnavailable},
		{500, "InternalError", errdefs.ErrUnavailable},
		{500, "OperationTimedOut", errdefs.ErrUnavailable},
		{429, "", errdefs.ErrUnavailable},
		{408, "", errdefs.ErrUnavailable},
		{416, "InvalidRange", errdefs.ErrOutOfRange},
		{409, "ContainerBeingDeleted", errdefs.ErrConflict},
		{501, "", errdefs.ErrNotImplemented},
		{400, "InvalidHeaderValue", errdefs.ErrInvalidArgument},
	} {
		err := response(t, tc.code, tc.errorCode)
		got := classify(err)
		if !errors.Is(got, tc.class) {
			t.Errorf("classify(%d %s) = %v, not of class %v", tc.code, tc.errorCode, got, tc.class)
		}
		if tc.class != errdefs.ErrNotFound && errdefs.IsNotFound(got) {
			t.Errorf("classify(%d %s) is not found", tc.code, tc.errorCode)
		}
		var re *azcore.ResponseError
		if !errors.As(got, &re) || re.StatusCode != tc.code {
			t.Errorf("classify(%d %s) lost the response error", tc.code, tc.errorCode)
		}
		// One line, naming request, status and code, without the query.
		msg := got.Error()
		if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "HEAD http://127.0.0.1:9/devstoreaccount1/c/blobs/sha256:ab: ") ||
			!strings.Contains(msg, http.StatusText(tc.code)) || !strings.Contains(msg, tc.errorCode) || strings.Contains(msg, "secret") {
			t.Errorf("classify(%d %s) text %q", tc.code, tc.errorCode, msg)
		}
		// Classified once, kept after.
		if again := classify(got); again != got {
			t.Errorf("classify of a classified error changed it: %v", again)
		}
	}
	for _, err := range []error{
		&net.OpError{Op: "dial", Err: errors.New("connection refused")},
		io.ErrUnexpectedEOF,
	} {
		if got := classify(err); !errdefs.IsUnavailable(got) || got.Error() != err.Error() {
			t.Errorf("classify(%v) = %v, want unavailable", err, got)
		}
	}
	offline.CheckClassifyPassesThrough(t, classify)
}

func TestUpdatedAt(t *testing.T) {
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later := mod.Add(time.Hour)
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		meta map[string]*string
		want time.Time
	}{
		{nil, mod},
		{map[string]*string{"Updated_at": str(later.Format(time.RFC3339Nano))}, later},
		{map[string]*string{"updated_at": str(later.Format(time.RFC3339Nano))}, later},
		{map[string]*string{"Updated_at": str(mod.Add(-time.Hour).Format(time.RFC3339Nano))}, mod},
		{map[string]*string{"Updated_at": str("yesterday")}, mod},
		{map[string]*string{"Updated_at": nil}, mod},
	} {
		if got := updatedAt(&mod, tc.meta); !got.Equal(tc.want) {
			t.Errorf("updatedAt(%v) = %v, want %v", tc.meta, got, tc.want)
		}
	}
}

// The client New makes: its account URL and its kind of credential.
func TestClients(t *testing.T) {
	t.Setenv(EnvConnectionString, "")
	os.Unsetenv(EnvConnectionString)
	// No credential of the machine may be found or asked for.
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_TOKEN_CREDENTIALS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	const key = "a2V5" // base64 of "key"
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		env  string
		opts []Option
		url  string
	}{
		{"connection string", "", []Option{WithConnectionString("DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:10000/acct")}, "http://127.0.0.1:10000/acct/"},
		{"environment", "AccountName=acct;AccountKey=" + key, nil, "https://acct.blob.core.windows.net/"},
		{"shared key", "", []Option{WithSharedKey("acct", key)}, "https://acct.blob.core.windows.net/"},
		{"shared key at a URL", "", []Option{WithSharedKey("devstoreaccount1", key), WithAccountURL("http://127.0.0.1:10000/devstoreaccount1")}, "http://127.0.0.1:10000/devstoreaccount1"},
		{"shared access signature", "", []Option{WithAccountURL("https://acct.blob.core.windows.net/?sv=2022-11-02&sig=abc")}, "https://acct.blob.core.windows.net/?sv=2022-11-02&sig=abc"},
		{"default credential", "", []Option{WithAccountURL("https://acct.blob.core.windows.net/")}, "https://acct.blob.core.windows.net/"},
		{"default credential asked for", "", []Option{WithAccountURL("https://acct.blob.core.windows.net/"), WithDefaultCredential(), WithClientOptions(&azblob.ClientOptions{})}, "https://acct.blob.core.windows.net/"},
		// The options win over the environment.
		{"options over environment", "AccountName=other;AccountKey=" + key, []Option{WithSharedKey("acct", key)}, "https://acct.blob.core.windows.net/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(EnvConnectionString, tc.env)
			}
			s, err := New(ctx, "c01", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.client.URL(); got != tc.url {
				t.Errorf("account URL %q, want %q", got, tc.url)
			}
		})
	}
}

// A token credential's failure is unauthenticated, not a network failure.
func TestCredentialFailureClass(t *testing.T) {
	cred := classedCredential{failingCredential{}}
	_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{})
	if !errdefs.IsUnauthorized(err) || !errdefs.IsUnauthorized(classify(err)) {
		t.Errorf("GetToken = %v, want unauthenticated", err)
	}
}

type failingCredential struct{}

func (failingCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("no credential here")
}

// The defaults the package documents are the shared store's.
func TestDefaultsShared(t *testing.T) {
	if DefaultName != objstore.DefaultName || DefaultTouchRefresh != objstore.DefaultTouchRefresh || DefaultGracePeriod != objstore.DefaultGracePeriod {
		t.Error("the package's defaults are not internal/objstore's")
	}
}
