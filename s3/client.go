package s3

import (
	"context"
	"net"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/errclass"
)

// newClient makes the SDK client the options describe: region,
// credentials and endpoint from the SDK's chain unless the options give
// them, checksums only where S3 requires them.
func newClient(ctx context.Context, o *options) (*s3.Client, error) {
	load := []func(*awsconfig.LoadOptions) error{
		// As BuildKit does: checksums only where S3 requires them, which
		// every S3-compatible server understands. Blobs are verified
		// against their digests before they are sent.
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if o.region != "" {
		load = append(load, awsconfig.WithRegion(o.region))
	}
	if o.attempts > 0 {
		load = append(load, awsconfig.WithRetryMaxAttempts(o.attempts))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, errclass.With(errors.Wrap(err, "loading AWS configuration"), errdefs.ErrInvalidArgument)
	}
	if client, ok := buildClient(cfg, o); ok {
		return client, nil
	}
	// No region and no endpoint: on AWS, the instance's region, if there
	// is an instance (the SDK does not ask IMDS unless told).
	if cfg, err := awsconfig.LoadDefaultConfig(ctx, append(load, awsconfig.WithEC2IMDSRegion())...); err == nil && cfg.Region != "" {
		if client, ok := buildClient(cfg, o); ok {
			return client, nil
		}
	}
	return nil, errors.Wrap(errdefs.ErrInvalidArgument, "no region: set AWS_REGION or use WithRegion")
}

// buildClient makes the client of cfg and o, and says false if it has
// neither a region nor an endpoint. The endpoint is the one the SDK
// resolves (WithEndpoint, else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the
// shared config), and decides the default addressing and region.
func buildClient(cfg aws.Config, o *options) (*s3.Client, bool) {
	ok := true
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.endpoint != "" {
			so.BaseEndpoint = aws.String(o.endpoint)
		}
		endpoint := aws.ToString(so.BaseEndpoint)
		if so.Region == "" {
			if endpoint == "" {
				ok = false
			}
			// S3-compatible servers sign for any region; most expect
			// this one.
			so.Region = "us-east-1"
		}
		so.UsePathStyle = isLocalEndpoint(endpoint)
		if o.pathStyle != nil {
			so.UsePathStyle = *o.pathStyle
		}
		if o.accessKey != "" {
			so.Credentials = credentials.NewStaticCredentialsProvider(o.accessKey, o.secretKey, o.token)
		}
	})
	return client, ok
}

// isLocalEndpoint tells whether the endpoint's host is an IP address or a
// loopback name, which have no subdomain per bucket.
func isLocalEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return net.ParseIP(h) != nil || h == "localhost" || strings.HasSuffix(h, ".localhost")
}
