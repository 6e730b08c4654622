package s3

import (
	"context"

	"github.com/aws/smithy-go"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/errclass"
	"github.com/buildcache/remotecache/internal/objstore"
)

// classify gives an error of the SDK the errdefs class callers test with
// errors.Is, keeping its text and chain: not found only for what S3 says
// is missing, so that a 503 or a refused credential never reads as a
// missing blob (a copy would silently become a smaller cache).
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return errclass.With(err, classOf(err))
}

func classOf(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchUpload":
			return errdefs.ErrNotFound
		case "AccessDenied", "AllAccessDisabled", "AccountProblem":
			return errdefs.ErrPermissionDenied
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
			return errdefs.ErrUnauthenticated
		case "SlowDown", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "Throttling", "ThrottlingException":
			return errdefs.ErrUnavailable
		case "PreconditionFailed":
			return errdefs.ErrFailedPrecondition
		case "NotImplemented":
			return errdefs.ErrNotImplemented
		case "EntityTooLarge", "InvalidRange":
			return errdefs.ErrOutOfRange
		}
	}
	var status interface{ HTTPStatusCode() int }
	if !errors.As(err, &status) {
		// No answer from the server: a refused or broken connection.
		return errdefs.ErrUnavailable
	}
	return objstore.StatusClass(status.HTTPStatusCode())
}
