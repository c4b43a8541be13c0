package appauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/appauth"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/veraison/go-cose"
)

func policies(t *testing.T, raw ...string) []appauth.Policy {
	t.Helper()
	var rs []json.RawMessage
	for _, r := range raw {
		rs = append(rs, json.RawMessage(r))
	}
	ps, err := appauth.ParsePolicies(rs)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestParsePolicies(t *testing.T) {
	ps := policies(t, `"user_cert"`, `{"all_of": ["user_cert", "jwt"]}`, `"no_auth"`)
	want := []appauth.Policy{{Name: "user_cert"}, {AllOf: []string{"user_cert", "jwt"}}, {Name: "no_auth"}}
	if !reflect.DeepEqual(ps, want) {
		t.Fatalf("got %+v", ps)
	}
	for _, bad := range []string{`"cookie"`, `{"all_of": []}`, `{"all_of": ["x"]}`, `{"any_of": ["jwt"]}`, `3`, `{"all_of": ["jwt"], "x": 1}`} {
		if _, err := appauth.ParsePolicies([]json.RawMessage{json.RawMessage(bad)}); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// authErr asserts err is the 401 InvalidAuthenticationInfo naming want.
func authErr(t *testing.T, name string, err error, want string) {
	t.Helper()
	var ae *appauth.Error
	if !errors.As(err, &ae) || ae.Code != "InvalidAuthenticationInfo" || !contains(err, want) {
		t.Errorf("%s: %v, want 401 InvalidAuthenticationInfo with %q", name, err, want)
	}
}

func TestCertPolicies(t *testing.T) {
	s := fakeState{}
	a := &appauth.Authenticator{State: s, Now: func() time.Time { return now }}
	user, member, stranger := valid(t), valid(t), valid(t)
	expired := newIdentity(t, nil, now.Add(-2*time.Hour), now.Add(-time.Hour))
	early := newIdentity(t, nil, now.Add(time.Hour), now.Add(2*time.Hour))
	s.set(govwire.MapUserCerts, user.id, user.pem)
	s.set(govwire.MapUserInfo, user.id, `{"user_data":{"isAdmin":true}}`)
	s.set(govwire.MapUserCerts, expired.id, expired.pem)
	s.set(govwire.MapUserCerts, early.id, early.pem)
	s.set(govwire.MapMemberCerts, member.id, member.pem)
	s.set(govwire.MapMemberInfo, member.id, `{"status":"Active","member_data":"m0"}`)
	s.set(govwire.MapMemberCerts, expired.id, expired.pem)

	caller, err := a.Authenticate(request(user.cert), nil, policies(t, `"user_cert"`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"policy": "user_cert", "id": user.id, "data": map[string]any{"isAdmin": true}, "cert": user.pem}
	if !reflect.DeepEqual(caller, want) {
		t.Fatalf("user_cert caller %v, want %v", caller, want)
	}
	caller, err = a.Authenticate(request(member.cert), nil, policies(t, `"member_cert"`))
	if err != nil || caller["policy"] != "member_cert" || caller["id"] != member.id || caller["data"] != "m0" || caller["cert"] != member.pem {
		t.Fatalf("member_cert caller %v, %v", caller, err)
	}
	// member_cert does not check validity (CCF's); user_cert does.
	if _, err := a.Authenticate(request(expired.cert), nil, policies(t, `"member_cert"`)); err != nil {
		t.Fatalf("expired member cert: %v", err)
	}
	// A user without info has data null.
	s.set(govwire.MapUserCerts, member.id, member.pem)
	if caller, err := a.Authenticate(request(member.cert), nil, policies(t, `"user_cert"`)); err != nil || caller["data"] != nil {
		t.Fatalf("user without info: %v, %v", caller, err)
	}
	caller, err = a.Authenticate(request(stranger.cert), nil, policies(t, `"any_cert"`))
	if err != nil || !reflect.DeepEqual(caller, map[string]any{"policy": "any_cert", "cert": stranger.pem}) {
		t.Fatalf("any_cert caller %v, %v", caller, err)
	}

	for _, c := range []struct {
		name, policy string
		ident        *identity
		want         string
	}{
		{"unknown user", `"user_cert"`, stranger, "user_cert: the client certificate (id " + stranger.id + ") is not a user's"},
		{"user is not a member", `"member_cert"`, user, "is not a member's"},
		{"expired user cert", `"user_cert"`, expired, "user_cert: the client certificate expired at"},
		{"user cert not yet valid", `"user_cert"`, early, "the client certificate is not valid before"},
		{"expired any cert", `"any_cert"`, expired, "any_cert: the client certificate expired at"},
		{"no certificate", `"user_cert"`, nil, "user_cert: no client certificate was presented"},
	} {
		var r *http.Request
		if c.ident != nil {
			r = request(c.ident.cert)
		} else {
			r = request(nil)
		}
		_, err := a.Authenticate(r, nil, policies(t, c.policy))
		authErr(t, c.name, err, c.want)
	}
	// Plain HTTP: no TLS state at all.
	r := request(nil)
	r.TLS = nil
	_, err = a.Authenticate(r, nil, policies(t, `"any_cert"`))
	authErr(t, "no TLS", err, "no client certificate was presented")
}

func TestNoAuthAndAllOf(t *testing.T) {
	s := fakeState{}
	a := &appauth.Authenticator{State: s, Now: func() time.Time { return now }}
	user := valid(t)
	s.set(govwire.MapUserCerts, user.id, user.pem)

	if caller, err := a.Authenticate(request(nil), nil, nil); caller != nil || err != nil {
		t.Fatalf("no policies: %v, %v", caller, err)
	}
	if caller, err := a.Authenticate(request(nil), nil, policies(t, `"no_auth"`)); err != nil || !reflect.DeepEqual(caller, map[string]any{"policy": "no_auth"}) {
		t.Fatalf("no_auth: %v, %v", caller, err)
	}
	// The first policy that passes supplies the caller.
	caller, err := a.Authenticate(request(user.cert), nil, policies(t, `"jwt"`, `"user_cert"`, `"no_auth"`))
	if err != nil || caller["policy"] != "user_cert" {
		t.Fatalf("first passing policy: %v, %v", caller, err)
	}
	caller, err = a.Authenticate(request(user.cert), nil, policies(t, `{"all_of": ["user_cert", "any_cert"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(caller["policy"], []any{"user_cert", "any_cert"}) || caller["user_cert"].(map[string]any)["id"] != user.id || caller["any_cert"].(map[string]any)["cert"] != user.pem {
		t.Fatalf("all_of caller %v", caller)
	}
	_, err = a.Authenticate(request(user.cert), nil, policies(t, `{"all_of": ["user_cert", "jwt"]}`, `"member_cert"`))
	authErr(t, "all_of with a failing member", err, "all_of[user_cert,jwt]: no Authorization header; member_cert: the client certificate (id "+user.id+") is not a member's")
}

func TestUserCOSESign1(t *testing.T) {
	s := fakeState{}
	a := &appauth.Authenticator{State: s, Now: func() time.Time { return now }}
	user, other := valid(t), valid(t)
	p384key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	user384 := newIdentity(t, p384key, now.Add(-time.Hour), now.Add(time.Hour))
	for _, u := range []*identity{user, other, user384} {
		s.set(govwire.MapUserCerts, u.id, u.pem)
	}
	s.set(govwire.MapUserInfo, user.id, `{"user_data":"u"}`)
	ps := policies(t, `"user_cose_sign1"`)
	post := func(body []byte, ctype string) (map[string]any, error) {
		r := request(nil)
		r.Header.Set("Content-Type", ctype)
		return a.Authenticate(r, body, ps)
	}
	headers := map[any]any{"ccf.msg.type": "custom_endpoints", "ccf.msg.created_at": int64(now.Unix())}
	good := signCOSE(t, user.key, cose.AlgorithmES256, []byte(user.id), headers, []byte(`{"x":1}`))
	caller, err := post(good, "application/cose")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"policy": "user_cose_sign1", "id": user.id, "data": "u", "cert": user.pem, "cose": map[string]any{"content": []byte(`{"x":1}`)}}
	if !reflect.DeepEqual(caller, want) {
		t.Fatalf("caller %v, want %v", caller, want)
	}
	if _, err := post(signCOSE(t, user384.key, cose.AlgorithmES384, []byte(user384.id), nil, []byte("p")), "application/cose"); err != nil {
		t.Fatalf("ES384 without the optional headers: %v", err)
	}

	tampered := append([]byte{}, good...)
	tampered[len(tampered)-1] ^= 1
	stranger := valid(t)
	for _, c := range []struct {
		name, ctype string
		body        []byte
		want        string
	}{
		{"bad signature", "application/cose", tampered, "the signature does not verify with the certificate of user " + user.id},
		{"signed by another user", "application/cose", signCOSE(t, other.key, cose.AlgorithmES256, []byte(user.id), nil, []byte("p")), "the signature does not verify"},
		{"unknown kid", "application/cose", signCOSE(t, stranger.key, cose.AlgorithmES256, []byte(stranger.id), nil, []byte("p")), "kid " + stranger.id + " is not a user"},
		{"kid not hex", "application/cose", signCOSE(t, user.key, cose.AlgorithmES256, []byte("user0"), nil, []byte("p")), `kid "user0" is not a user id`},
		{"no kid", "application/cose", signCOSE(t, user.key, cose.AlgorithmES256, nil, nil, []byte("p")), "needs kid"},
		{"alg and key differ", "application/cose", signCOSE(t, user384.key, cose.AlgorithmES256, []byte(user384.id), nil, []byte("p")), "algorithm ES256 does not fit the key of user"},
		{"bad msg type", "application/cose", signCOSE(t, user.key, cose.AlgorithmES256, []byte(user.id), map[any]any{"ccf.msg.type": int64(1)}, []byte("p")), "ccf.msg.type must be a text string"},
		{"bad created_at", "application/cose", signCOSE(t, user.key, cose.AlgorithmES256, []byte(user.id), map[any]any{"ccf.msg.created_at": "now"}, []byte("p")), "ccf.msg.created_at must be an unsigned integer"},
		{"negative created_at", "application/cose", signCOSE(t, user.key, cose.AlgorithmES256, []byte(user.id), map[any]any{"ccf.msg.created_at": int64(-1)}, []byte("p")), "ccf.msg.created_at must be an unsigned integer"},
		{"untagged", "application/cose", good[1:], "not a tagged COSE_Sign1"},
		{"JSON content type", "application/json", good, "the request is not application/cose"},
		{"garbage", "application/cose", []byte("{}"), "not a tagged COSE_Sign1"},
	} {
		_, err := post(c.body, c.ctype)
		authErr(t, c.name, err, c.want)
	}
}

func TestJWT(t *testing.T) {
	s := fakeState{}
	a := &appauth.Authenticator{State: s, Now: func() time.Time { return now }}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert := newIdentity(t, rsaKey, now.Add(-time.Hour), now.Add(time.Hour))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ecKey.PublicKey.Bytes()
	// As set_jwt_public_signing_keys stores them: an x5c cert, and a JWK
	// with an issuer constraint.
	keysOf(s, "rsa1", govwire.JWTKey{Cert: base64.StdEncoding.EncodeToString(rsaCert.cert.Raw), Issuer: "https://demo"})
	keysOf(s, "ec1", govwire.JWTKey{JWK: json.RawMessage(mustJSON(map[string]string{"kty": "EC", "kid": "ec1", "crv": "P-256",
		"x": b64url(ecPub[1:33]), "y": b64url(ecPub[33:])})), Issuer: "https://login", Constraint: "https://login/tenant"})
	// One kid with keys from two issuers: the one that verifies wins.
	keysOf(s, "shared",
		govwire.JWTKey{JWK: json.RawMessage(`{"kty":"RSA","kid":"shared","n":"` + b64url(rsaKey.N.Bytes()) + `","e":"AQAB"}`), Issuer: "https://other"},
		govwire.JWTKey{Cert: base64.StdEncoding.EncodeToString(rsaCert.cert.Raw), Issuer: "https://demo"})
	ps := policies(t, `"jwt"`)
	claims := func(extra map[string]any) map[string]any {
		c := map[string]any{"sub": "alice", "iss": "https://demo", "nbf": now.Unix() - 60, "exp": now.Unix() + 60}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	call := func(token string) (map[string]any, error) {
		return a.Authenticate(bearer(request(nil), token), nil, ps)
	}

	caller, err := call(signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa1", "typ": "JWT"}, claims(nil)))
	if err != nil {
		t.Fatal(err)
	}
	jwt := caller["jwt"].(map[string]any)
	if caller["policy"] != "jwt" || jwt["keyIssuer"] != "https://demo" || jwt["header"].(map[string]any)["kid"] != "rsa1" ||
		jwt["payload"].(map[string]any)["sub"] != "alice" || jwt["payload"].(map[string]any)["exp"] != float64(now.Unix()+60) {
		t.Fatalf("caller %v", caller)
	}
	if _, err := call(signJWT(t, rsaKey, map[string]any{"alg": "PS256", "kid": "rsa1"}, claims(nil))); err != nil {
		t.Fatalf("PS256: %v", err)
	}
	if _, err := call(signJWT(t, ecKey, map[string]any{"alg": "ES256", "kid": "ec1"}, claims(map[string]any{"iss": "https://login/tenant"}))); err != nil {
		t.Fatalf("ES256 with its constraint: %v", err)
	}
	if c, err := call(signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "shared"}, claims(nil))); err != nil || c["jwt"].(map[string]any)["keyIssuer"] != "https://other" {
		t.Fatalf("shared kid: %v, %v", c, err)
	}

	good := signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa1"}, claims(nil))
	// Flip one bit of the signature itself (rewriting its last characters
	// could leave it unchanged).
	dot := strings.LastIndexByte(good, '.')
	sig, err := base64.RawURLEncoding.DecodeString(good[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[0] ^= 1
	tampered := good[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
	for _, c := range []struct {
		name, header, want string
	}{
		{"no header", "", "jwt: no Authorization header"},
		{"basic", "Basic dTpw", "not Bearer <token>"},
		{"two parts", "Bearer a.b", "not a compact JWS"},
		{"padding", "Bearer " + good + "=", "not base64url without padding"},
		{"bad signature", "Bearer " + tampered, `the signature does not verify with the keys of kid "rsa1"`},
		{"signed by another key", "Bearer " + signJWT(t, otherKey, map[string]any{"alg": "ES256", "kid": "ec1"}, claims(map[string]any{"iss": "https://login/tenant"})), "invalid signature"},
		{"expired", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa1"}, claims(map[string]any{"exp": now.Unix() - 1})), "the token expired at"},
		{"not yet valid", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa1"}, claims(map[string]any{"nbf": now.Unix() + 10})), "the token is not valid before"},
		{"no exp", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa1"}, claims(map[string]any{"exp": nil})), "the token needs nbf and exp"},
		{"unknown kid", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "nope"}, claims(nil)), `no signing key with kid "nope" is registered`},
		{"no kid", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "RS256"}, claims(nil)), "the token header has no kid"},
		{"wrong issuer", "Bearer " + signJWT(t, ecKey, map[string]any{"alg": "ES256", "kid": "ec1"}, claims(map[string]any{"iss": "https://evil"})), `the token's iss "https://evil" is not "https://login/tenant"`},
		{"alg none", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "none", "kid": "rsa1"}, claims(nil)), `algorithm "none" is not accepted`},
		{"HMAC", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "HS256", "kid": "rsa1"}, claims(nil)), `algorithm "HS256" is not accepted`},
		{"alg for another key type", "Bearer " + signJWT(t, ecKey, map[string]any{"alg": "ES256", "kid": "rsa1"}, claims(nil)), "the key is not an EC key on P-256"},
		{"crit", "Bearer " + signJWT(t, rsaKey, map[string]any{"alg": "RS256", "kid": "rsa1", "crit": []string{"exp"}}, claims(nil)), "critical header parameters"},
	} {
		r := request(nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		_, err := a.Authenticate(r, nil, ps)
		authErr(t, c.name, err, c.want)
	}
}

// A state that cannot be read is the server's error, not a 401.
func TestStateError(t *testing.T) {
	a := &appauth.Authenticator{State: brokenState{}, Now: func() time.Time { return now }}
	_, err := a.Authenticate(request(valid(t).cert), nil, policies(t, `"user_cert"`))
	var ae *appauth.Error
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("broken state: %v", err)
	}
}

type brokenState struct{}

func (brokenState) GetKV(string, []byte) ([]byte, error)         { return nil, errors.New("disk on fire") }
func (brokenState) ScanKV(string, func(k, v []byte) error) error { return errors.New("disk on fire") }
