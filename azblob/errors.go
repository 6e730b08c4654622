package azblob

import (
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/errclass"
	"github.com/buildcache/remotecache/internal/objstore"
)

// classify gives an error of the SDK the errdefs class callers test with
// errors.Is, keeping its chain (errors.As finds the *azcore.ResponseError):
// not found only for what Azure says is missing, so that a 503 or a
// refused credential never reads as a missing blob (a copy would silently
// become a smaller cache). A response error's text is made one line (the
// SDK's spans a dozen, with the whole response body). err is what the SDK
// returned, or an error classify gave before: the chain of an SDK error
// wrapped in between would lose its text.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errclass.Has(err) {
		// Classed already: by classify, a context error, a credential's
		// failure (client.go).
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return errclass.With(&responseError{re: re}, classOf(re))
	}
	// No answer from the server: a refused or broken connection.
	return errclass.With(err, errdefs.ErrUnavailable)
}

func classOf(re *azcore.ResponseError) error {
	switch bloberror.Code(re.ErrorCode) {
	case bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound:
		return errdefs.ErrNotFound
	case bloberror.BlobAlreadyExists, bloberror.ContainerAlreadyExists:
		return errdefs.ErrAlreadyExists
	case bloberror.ConditionNotMet, bloberror.TargetConditionNotMet, bloberror.SourceConditionNotMet:
		return errdefs.ErrFailedPrecondition
	case bloberror.AuthenticationFailed, bloberror.InvalidAuthenticationInfo, bloberror.NoAuthenticationInformation:
		return errdefs.ErrUnauthenticated
	case bloberror.AuthorizationFailure, bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationProtocolMismatch,
		bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch, bloberror.AuthorizationSourceIPMismatch,
		bloberror.InsufficientAccountPermissions, bloberror.AccountIsDisabled:
		return errdefs.ErrPermissionDenied
	case bloberror.ServerBusy, bloberror.OperationTimedOut, bloberror.InternalError:
		return errdefs.ErrUnavailable
	case bloberror.InvalidRange:
		return errdefs.ErrOutOfRange
	}
	// A 413, a blob or block over Azure's limits, is out of range here.
	if re.StatusCode == http.StatusRequestEntityTooLarge {
		return errdefs.ErrOutOfRange
	}
	return objstore.StatusClass(re.StatusCode)
}

// responseError is an *azcore.ResponseError told in one line: request,
// status, error code ("HEAD http://…/c/blobs/sha256:…: 404 The specified
// blob does not exist. (BlobNotFound)"). The URL has no query, where a
// shared access signature would be.
type responseError struct {
	re *azcore.ResponseError
}

func (e *responseError) Error() string {
	var b strings.Builder
	if r := e.re.RawResponse; r != nil {
		if req := r.Request; req != nil {
			b.WriteString(req.Method + " " + req.URL.Scheme + "://" + req.URL.Host + req.URL.Path + ": ")
		}
		if r.Status != "" {
			b.WriteString(r.Status)
		} else {
			b.WriteString(http.StatusText(r.StatusCode))
		}
	} else {
		b.WriteString(http.StatusText(e.re.StatusCode))
	}
	if e.re.ErrorCode != "" {
		b.WriteString(" (" + e.re.ErrorCode + ")")
	}
	return b.String()
}

func (e *responseError) Unwrap() error { return e.re }
