package azblob

import (
	"context"
	"net/url"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/errclass"
)

// newClient makes the SDK client the options describe, without a request:
//
//   - WithConnectionString, or $AZURE_STORAGE_CONNECTION_STRING when no
//     option names an account;
//   - WithSharedKey, at WithAccountURL or the account's public URL;
//   - WithAccountURL with a shared access signature in its query: no
//     other credential;
//   - WithAccountURL otherwise (or with WithDefaultCredential): the SDK's
//     default credential chain, as BuildKit's exporter without a key.
func newClient(o *options) (*azblob.Client, error) {
	co := o.clientOptions
	switch {
	case o.connectionString != "":
		return fromConnectionString(o.connectionString, co)
	case o.accountKey != "":
		accountURL := o.accountURL
		if accountURL == "" {
			accountURL = "https://" + o.accountName + ".blob.core.windows.net/"
		}
		cred, err := azblob.NewSharedKeyCredential(o.accountName, o.accountKey)
		if err != nil {
			// A key that is not base64.
			return nil, errclass.With(errors.Wrapf(err, "shared key of account %s", o.accountName), errdefs.ErrInvalidArgument)
		}
		c, err := azblob.NewClientWithSharedKeyCredential(accountURL, cred, co)
		return c, errclass.Ensure(errors.Wrap(err, "making a client"), errdefs.ErrInvalidArgument)
	case o.accountURL != "" && !o.defaultCredential && hasSAS(o.accountURL):
		c, err := azblob.NewClientWithNoCredential(o.accountURL, co)
		return c, errclass.Ensure(errors.Wrap(err, "making a client"), errdefs.ErrInvalidArgument)
	case o.accountURL != "":
		var cro *azidentity.DefaultAzureCredentialOptions
		if co != nil {
			cro = &azidentity.DefaultAzureCredentialOptions{ClientOptions: co.ClientOptions}
		}
		cred, err := azidentity.NewDefaultAzureCredential(cro)
		if err != nil {
			return nil, errclass.With(errors.Wrap(err, "Azure default credential"), errdefs.ErrUnauthenticated)
		}
		c, err := azblob.NewClient(o.accountURL, classedCredential{cred}, co)
		return c, errclass.Ensure(errors.Wrap(err, "making a client"), errdefs.ErrInvalidArgument)
	}
	if s := os.Getenv(EnvConnectionString); s != "" {
		c, err := fromConnectionString(s, co)
		return c, errors.Wrapf(err, "$%s", EnvConnectionString)
	}
	return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "no storage account: set $%s, or use WithConnectionString, WithAccountURL or WithSharedKey", EnvConnectionString)
}

func fromConnectionString(s string, co *azblob.ClientOptions) (*azblob.Client, error) {
	c, err := azblob.NewClientFromConnectionString(s, co)
	if err != nil {
		// The SDK's message does not quote the string, which holds a key.
		return nil, errclass.With(errors.Wrap(err, "connection string"), errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// hasSAS tells whether an account URL carries a shared access signature.
func hasSAS(accountURL string) bool {
	u, err := url.Parse(accountURL)
	return err == nil && u.Query().Has("sig")
}

// classedCredential gives the failures of a token credential the class
// errdefs.ErrUnauthenticated, so that a request it could not sign is not
// taken for a network failure.
type classedCredential struct {
	azcore.TokenCredential
}

func (c classedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, opts)
	if err != nil && ctx.Err() == nil {
		err = errclass.With(err, errdefs.ErrUnauthenticated)
	}
	return tok, err
}
