package regtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/distribution/v3/configuration"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/registry"

	_ "github.com/distribution/distribution/v3/registry/auth/token"
)

// tokenIssuer is the token service of the bearer-token flow that GHCR,
// Docker Hub and Harbor use: it checks a user's basic auth and gives a
// JWT, signed with its test key, that grants what the user may of the
// scopes asked.
type tokenIssuer struct {
	URL string
	key *ecdsa.PrivateKey
	// access is, per user and repository, the actions granted.
	access map[string]map[string][]string
	users  map[string]string

	mu     sync.Mutex
	issued int
	// uses counts the requests each token was sent with; maxUses, if not
	// 0, is how many the proxy in front of the registry lets a token
	// make before it answers as the registry does for an expired token.
	uses    map[string]int
	maxUses int
}

const (
	tokenService    = "regtest"
	tokenIssuerName = "regtest-issuer"
	tokenKeyID      = "regtest-key"
)

// startTokenIssuer starts a token issuer on 127.0.0.1.
func startTokenIssuer(t *testing.T, users map[string]string, access map[string]map[string][]string) *tokenIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ti := &tokenIssuer{key: key, access: access, users: users, uses: map[string]int{}}
	ti.URL = "http://" + serve(t, http.HandlerFunc(ti.serveToken)) + "/token"
	return ti
}

// jwks writes the issuer's public key as a JSON web key set file.
func (ti *tokenIssuer) jwks(t *testing.T) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	pub := ti.key.PublicKey
	set := map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": tokenKeyID, "alg": "ES256", "use": "sig",
		"x": b64(pub.X.FillBytes(make([]byte, 32))), "y": b64(pub.Y.FillBytes(make([]byte, 32))),
	}}}
	dt, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, dt, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (ti *tokenIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.NotFound(w, r) // no OAuth POST: clients fall back to GET
		return
	}
	user, pass, ok := r.BasicAuth()
	if ok && ti.users[user] != pass {
		http.Error(w, "wrong credentials", http.StatusUnauthorized)
		return
	}
	if !ok {
		user = "" // anonymous
	}
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	var granted []access
	for _, scope := range r.URL.Query()["scope"] {
		for _, s := range strings.Split(scope, " ") {
			parts := strings.Split(s, ":")
			if len(parts) != 3 || parts[0] != "repository" {
				continue
			}
			a := access{Type: "repository", Name: parts[1], Actions: []string{}}
			for _, act := range strings.Split(parts[2], ",") {
				if slices.Contains(ti.access[user][parts[1]], act) {
					a.Actions = append(a.Actions, act)
				}
			}
			granted = append(granted, a)
		}
	}
	ti.mu.Lock()
	ti.issued++
	n := ti.issued
	ti.mu.Unlock()
	now := time.Now()
	claims := map[string]any{
		"iss": tokenIssuerName, "sub": user, "aud": tokenService,
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": fmt.Sprint(n), "access": granted,
	}
	tok, err := ti.sign(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 3600, "issued_at": now.Format(time.RFC3339)})
}

// sign makes a JWT of claims, signed ES256 with the issuer's key.
func (ti *tokenIssuer) sign(claims map[string]any) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	header, err := json.Marshal(map[string]string{"typ": "JWT", "alg": "ES256", "kid": tokenKeyID})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := b64(header) + "." + b64(payload)
	h := sha256.Sum256([]byte(signed))
	rr, ss, err := ecdsa.Sign(rand.Reader, ti.key, h[:])
	if err != nil {
		return "", err
	}
	sig := append(rr.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	return signed + "." + b64(sig), nil
}

// Issued returns how many tokens were issued.
func (ti *tokenIssuer) Issued() int {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.issued
}

func (ti *tokenIssuer) setMaxUses(n int) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.maxUses = n
}

// expire is a fault for the proxy in front of the registry: a token sent
// with more than maxUses requests gets the registry's answer to an
// expired token (401, error="invalid_token"), so that tokens expire in the
// middle of an export, whatever its pace.
func (ti *tokenIssuer) expire(w http.ResponseWriter, r *http.Request, _ string, _ int) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	ti.mu.Lock()
	ti.uses[tok]++
	n, limit := ti.uses[tok], ti.maxUses
	ti.mu.Unlock()
	if limit == 0 || n <= limit {
		return false
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q,error="invalid_token"`, ti.URL, tokenService))
	writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	return true
}

// TestBearerToken runs against a registry that asks for bearer tokens of
// an issuer the test runs: pull and push scopes, a token that expires in
// the middle of an export, a push the token does not allow, a mount from
// a repository the credentials cannot read.
func TestBearerToken(t *testing.T) {
	ctx := context.Background()
	users := map[string]string{"writer": "w-pass", "reader": "r-pass", "other": "o-pass"}
	ti := startTokenIssuer(t, users, map[string]map[string][]string{
		"writer": {"team/cache": {"pull", "push"}, "team/copy": {"pull", "push"}},
		"reader": {"team/cache": {"pull"}},
		"other":  {"team/other": {"pull", "push"}},
	})
	jwks := ti.jwks(t)
	srv := startRegistryWith(t, nil, func(cfg *configuration.Configuration) {
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm": ti.URL, "service": tokenService, "issuer": tokenIssuerName, "jwks": jwks,
		}}
	})
	fp := startFaultProxy(t, srv.Host, ti.expire, nil)
	ref := fp.Host + "/team/cache:v1"
	g := cachegen.NewWithOptions(31, 40, cachegen.Options{BlobSize: 1 << 10})
	want, _ := wantConfig(ctx, t, g)
	as := func(user string) registry.Option { return registry.WithCredentials(user, users[user]) }

	t.Run("push and pull", func(t *testing.T) {
		if _, err := export(ctx, newRemote(t, ref, as("writer")), g, remotecache.FormatImageManifest); err != nil {
			t.Fatal(err)
		}
		if got := importConfig(ctx, t, newRemote(t, ref, as("reader"))); !bytes.Equal(got, want) {
			t.Errorf("imported config differs")
		}
		if _, err := newRemote(t, ref).Resolve(ctx); !errdefs.IsUnauthorized(err) {
			t.Errorf("anonymous resolve: %v, want an error of class unauthenticated", err)
		}
	})

	t.Run("token expires mid-export", func(t *testing.T) {
		// More uses than requests in flight, so that a request sent again
		// with a new token finds it still good.
		ti.setMaxUses(40)
		defer ti.setMaxUses(0)
		g2 := cachegen.NewWithOptions(32, 60, cachegen.Options{BlobSize: 1 << 10})
		issued := ti.Issued()
		if _, err := export(ctx, newRemote(t, ref, as("writer")), g2, remotecache.FormatImageManifest); err != nil {
			t.Fatal(err)
		}
		if n := ti.Issued() - issued; n < 3 {
			t.Errorf("%d tokens issued, want several: each expires after 40 requests", n)
		}
		want2, _ := wantConfig(ctx, t, g2)
		if got := importConfig(ctx, t, newRemote(t, ref, as("reader"))); !bytes.Equal(got, want2) {
			t.Errorf("imported config differs")
		}
		t.Logf("%d tokens issued", ti.Issued()-issued)
	})

	t.Run("push refused", func(t *testing.T) {
		g3 := cachegen.NewWithOptions(33, 6, cachegen.Options{BlobSize: 1 << 10})
		up := srv.uploaded.Load()
		_, err := export(ctx, newRemote(t, ref, as("reader")), g3, remotecache.FormatImageManifest)
		if !errdefs.IsUnauthorized(err) {
			t.Fatalf("export with pull access only: %v, want an error of class unauthenticated", err)
		}
		for _, s := range []string{"401", "may not allow pushing to team/cache"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error does not say %q: %v", s, err)
			}
		}
		if n := srv.uploaded.Load() - up; n != 0 {
			t.Errorf("%d bytes uploaded without push access", n)
		}
		t.Logf("refused: %v", err)
	})

	t.Run("mount refused", func(t *testing.T) {
		// "other" may push to team/other but not read team/cache: the
		// registry refuses the mount, and the blobs are uploaded.
		want := importConfig(ctx, t, newRemote(t, ref, as("reader")))
		before, up := srv.Counts(), srv.uploaded.Load()
		dst := newRemote(t, fp.Host+"/team/other:v1", as("other"))
		if _, err := copyCache(ctx, t, newRemote(t, ref, as("reader")), dst); err != nil {
			t.Fatal(err)
		}
		counts := srv.CountsSince(before)
		if counts["POST mount"] == 0 || srv.uploaded.Load() == up {
			t.Errorf("requests %v, %d bytes uploaded: want mounts refused, then uploads", counts, srv.uploaded.Load()-up)
		}
		if got := importConfig(ctx, t, newRemote(t, fp.Host+"/team/other:v1", as("other"))); !bytes.Equal(got, want) {
			t.Errorf("the copy is another cache")
		}
	})

	t.Run("mount", func(t *testing.T) {
		want := importConfig(ctx, t, newRemote(t, ref, as("reader")))
		before, up := srv.Counts(), srv.uploaded.Load()
		dst := newRemote(t, fp.Host+"/team/copy:v1", as("writer"))
		res, err := copyCache(ctx, t, newRemote(t, ref, as("reader")), dst)
		if err != nil {
			t.Fatal(err)
		}
		if got := importConfig(ctx, t, newRemote(t, fp.Host+"/team/copy:v1", as("writer"))); !bytes.Equal(got, want) {
			t.Errorf("the copy is another cache")
		}
		if n := srv.uploaded.Load() - up; n != 0 {
			t.Errorf("%d bytes uploaded, want 0 (requests %v)", n, srv.CountsSince(before))
		}
		if len(res.skipped) == 0 {
			t.Errorf("nothing skipped")
		}
	})
}
