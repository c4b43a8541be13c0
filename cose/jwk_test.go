package cose_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/charterlog/charter/cose"
)

// TestJWKRoundTrip: every kind of key the codec knows comes back equal
// from its JWK, public and private.
func TestJWKRoundTrip(t *testing.T) {
	var privs []crypto.Signer
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, _ := ecdsa.GenerateKey(c, rand.Reader)
		privs = append(privs, k)
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	privs = append(privs, rk, ek)
	type equaler interface{ Equal(crypto.PublicKey) bool }
	for _, priv := range privs {
		j, err := cose.JWKFromKey(priv)
		if err != nil {
			t.Fatalf("%T: %v", priv, err)
		}
		b, _ := json.Marshal(j)
		var back cose.JWK
		if err := json.Unmarshal(b, &back); err != nil || back != j {
			t.Fatalf("%T: JSON round trip %s: %+v, %v", priv, b, back, err)
		}
		pub, err := back.PublicKey()
		if err != nil || !pub.(equaler).Equal(priv.Public()) {
			t.Errorf("%T: public key %v, %v", priv, pub, err)
		}
		got, err := back.PrivateKey()
		if err != nil || !got.Public().(equaler).Equal(priv.Public()) {
			t.Errorf("%T: private key: %v", priv, err)
		}
		pj, err := cose.JWKFromKey(priv.Public())
		if err != nil || pj.D != "" || pj.Kty != j.Kty || pj.X != j.X || pj.N != j.N {
			t.Errorf("%T: public JWK %+v, %v", priv, pj, err)
		}
		if _, err := pj.PrivateKey(); !errors.Is(err, cose.ErrBadJWK) {
			t.Errorf("%T: private key from a public JWK: %v", priv, err)
		}
	}
}

func TestJWKRefuses(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := cose.JWKFromKey(&k.PublicKey)
	b64 := base64.RawURLEncoding
	x, _ := b64.DecodeString(good.X)
	short := good
	short.X = b64.EncodeToString(x[1:]) // leading zero octets dropped: RFC 7518 §6.2.1.2 forbids it
	shortY := good
	shortY.Y = "AAAA"
	offCurve := good
	offCurve.Y = good.X
	loose := good
	// The last character of a 43-character base64url value carries two
	// unused bits; setting them is a second encoding of the same bytes.
	last := []byte(loose.X)
	last[len(last)-1] = map[bool]byte{true: 'B', false: 'A'}[last[len(last)-1] == 'A']
	loose.X = string(last)
	for _, c := range []struct {
		name string
		j    cose.JWK
	}{
		{"short x", short},
		{"short y", shortY},
		{"point off the curve", offCurve},
		{"non-canonical base64", loose},
		{"no y", cose.JWK{Kty: "EC", Crv: "P-256", X: good.X}},
		{"curve P-224", cose.JWK{Kty: "EC", Crv: "P-224", X: good.X, Y: good.Y}},
		{"RSA without n", cose.JWK{Kty: "RSA", E: "AQAB"}},
		{"RSA exponent of 5 bytes", cose.JWK{Kty: "RSA", N: "AQAB", E: "AQIDBAU"}},
		{"OKP X25519", cose.JWK{Kty: "OKP", Crv: "X25519", X: good.X}},
		{"Ed25519 x of 31 bytes", cose.JWK{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(x[1:])}},
		{"kty oct", cose.JWK{Kty: "oct"}},
	} {
		if _, err := c.j.PublicKey(); !errors.Is(err, cose.ErrBadJWK) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
