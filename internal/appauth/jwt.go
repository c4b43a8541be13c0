package appauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	// Charter's cose (the JWK codec); cose.go's "cose" is go-cose.
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/govwire"
)

// JWT verification uses only the standard library. What CCF's jwt policy
// needs is small: compact JWS (RFC 7515 §7.1) with RS256, PS256, ES256 or
// ES384, a key found by kid among those governance registered (an x5c
// certificate or an RSA/EC JWK), and the nbf, exp and iss claims. The
// well-kept Go JWT library (golang-jwt/jwt) would still need a JWK parser
// beside it, and go-jose brings JWE and much more than this path should
// carry; a few lines on crypto/rsa and crypto/ecdsa keep the one place
// that decides who may call an app easy to audit. The algorithm is
// checked against the key's type and size before any verification, so
// "none", HMAC and algorithm confusion are refused by construction.

// maxTokenBytes bounds an Authorization header's token.
const maxTokenBytes = 16 << 10

type jwtAlg struct {
	hash crypto.Hash
	// verify checks sig over digest with key, refusing a key of the
	// wrong type or size.
	verify func(key crypto.PublicKey, digest, sig []byte) error
}

var jwtAlgs = map[string]jwtAlg{
	"RS256": {crypto.SHA256, verifyRSA(false)},
	"PS256": {crypto.SHA256, verifyRSA(true)},
	"ES256": {crypto.SHA256, verifyEC(elliptic.P256())},
	"ES384": {crypto.SHA384, verifyEC(elliptic.P384())},
}

func verifyRSA(pss bool) func(crypto.PublicKey, []byte, []byte) error {
	return func(key crypto.PublicKey, digest, sig []byte) error {
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("the key is not an RSA key")
		}
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("the RSA key has fewer than 2048 bits")
		}
		if pss {
			return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	}
}

func verifyEC(curve elliptic.Curve) func(crypto.PublicKey, []byte, []byte) error {
	return func(key crypto.PublicKey, digest, sig []byte) error {
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve != curve {
			return fmt.Errorf("the key is not an EC key on %s", curve.Params().Name)
		}
		// RFC 7518 §3.4: R ‖ S, each the size of the curve's order.
		n := (curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return fmt.Errorf("the signature is not %d bytes", 2*n)
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, digest, r, s) {
			return fmt.Errorf("invalid signature")
		}
		return nil
	}
}

// b64 decodes base64url without padding, strictly.
func b64(s string) ([]byte, error) { return base64.RawURLEncoding.Strict().DecodeString(s) }

// jwtCaller authenticates "Authorization: Bearer <JWT>" (CCF's
// jwt_auth.cpp): the token's kid must name a key registered for an
// issuer, its signature must verify with it, nbf ≤ now ≤ exp, and if the
// key carries an issuer constraint, iss must equal it.
func (a *Authenticator) jwtCaller(r *http.Request) (map[string]any, error) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return nil, refuse("no Authorization header")
	}
	scheme, token, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, refuse("the Authorization header is not Bearer <token>")
	}
	if len(token) > maxTokenBytes {
		return nil, refuse("the token is longer than %d bytes", maxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, refuse("the token is not a compact JWS (header.payload.signature)")
	}
	hb, err1 := b64(parts[0])
	pb, err2 := b64(parts[1])
	sig, err3 := b64(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, refuse("the token is not base64url without padding")
	}
	var header map[string]any
	var hdr struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(hb, &header); err != nil || json.Unmarshal(hb, &hdr) != nil {
		return nil, refuse("the token header is not a JSON object")
	}
	alg, ok := jwtAlgs[hdr.Alg]
	if !ok {
		return nil, refuse("algorithm %q is not accepted (want RS256, PS256, ES256 or ES384)", hdr.Alg)
	}
	if hdr.Crit != nil {
		// RFC 7515 §4.1.11: unknown critical extensions must be refused.
		return nil, refuse("the token has critical header parameters %v", hdr.Crit)
	}
	if hdr.Kid == "" {
		return nil, refuse("the token header has no kid")
	}
	raw, ok, err := a.get(govwire.MapJWTKeys, hdr.Kid)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, refuse("no signing key with kid %q is registered", hdr.Kid)
	}
	var keys []govwire.JWTKey
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("appauth: %s[%s]: %w", govwire.MapJWTKeys, hdr.Kid, err)
	}
	var digest []byte
	signed := parts[0] + "." + parts[1]
	if alg.hash == crypto.SHA256 {
		d := sha256.Sum256([]byte(signed))
		digest = d[:]
	} else {
		d := sha512.Sum384([]byte(signed))
		digest = d[:]
	}
	var key *govwire.JWTKey
	var whyNot []string
	for i := range keys {
		pub, err := publicKey(&keys[i])
		if err == nil {
			err = alg.verify(pub, digest, sig)
		}
		if err == nil {
			key = &keys[i]
			break
		}
		whyNot = append(whyNot, keys[i].Issuer+": "+err.Error())
	}
	if key == nil {
		return nil, refuse("the signature does not verify with the keys of kid %q (%s)", hdr.Kid, strings.Join(whyNot, "; "))
	}

	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	var payload map[string]any
	if err := dec.Decode(&payload); err != nil || payload == nil {
		return nil, refuse("the token payload is not a JSON object")
	}
	now := a.now().Unix()
	nbf, okN := numericDate(payload["nbf"])
	exp, okE := numericDate(payload["exp"])
	if !okN || !okE {
		return nil, refuse("the token needs nbf and exp (NumericDate)")
	}
	if now < nbf {
		return nil, refuse("the token is not valid before %d (now %d)", nbf, now)
	}
	if now > exp {
		return nil, refuse("the token expired at %d (now %d)", exp, now)
	}
	if key.Constraint != "" {
		if iss, _ := payload["iss"].(string); iss != key.Constraint {
			return nil, refuse("the token's iss %q is not %q, which the key of kid %q requires", iss, key.Constraint, hdr.Kid)
		}
	}
	return map[string]any{"policy": JWT, "jwt": map[string]any{
		"keyIssuer": key.Issuer, "header": header, "payload": jsonNumbers(payload),
	}}, nil
}

// numericDate reads an integer NumericDate (RFC 7519 §2); fractions are
// truncated.
func numericDate(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false
	}
	return int64(f), true
}

// jsonNumbers replaces json.Number with float64 (what JSON.parse gives the
// app), recursively.
func jsonNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = jsonNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = jsonNumbers(x)
		}
	}
	return v
}

// publicKey is the key of a registered JWT signing key: its certificate's
// (x5c, base64 DER) or its JWK's.
func publicKey(k *govwire.JWTKey) (crypto.PublicKey, error) {
	if k.Cert != "" {
		der, err := base64.StdEncoding.DecodeString(k.Cert)
		if err != nil {
			return nil, fmt.Errorf("the registered certificate is not base64")
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("the registered certificate: %v", err)
		}
		return c.PublicKey, nil
	}
	var j cose.JWK
	if err := json.Unmarshal(k.JWK, &j); err != nil {
		return nil, fmt.Errorf("the registered JWK is not JSON")
	}
	if j.Kty != "RSA" && j.Kty != "EC" {
		return nil, fmt.Errorf("the registered JWK has kty %q", j.Kty)
	}
	pub, err := j.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("the registered %s JWK: %v", j.Kty, err)
	}
	return pub, nil
}
