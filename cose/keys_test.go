package cose_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

func testKeys(t *testing.T) []cose.Key {
	t.Helper()
	var keys []cose.Key
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		priv, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := cose.NewKey(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, err := cose.NewKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return append(keys, k)
}

func keysEqual(a, b cose.Key) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	return bytes.Equal(a.Kid, b.Kid) && a.Alg == b.Alg && a.Public.(eq).Equal(b.Public)
}

func TestKeyID(t *testing.T) {
	for _, k := range testKeys(t) {
		der, _ := x509.MarshalPKIXPublicKey(k.Public)
		sum := sha256.Sum256(der)
		if string(k.Kid) != hex.EncodeToString(sum[:]) || len(k.Kid) != 64 {
			t.Errorf("kid %q", k.Kid)
		}
	}
	if _, err := cose.KeyID("not a key"); err == nil {
		t.Error("KeyID accepted a string")
	}
	wantAlg := []gocose.Algorithm{gocose.AlgorithmES256, gocose.AlgorithmES384, gocose.AlgorithmES512, gocose.AlgorithmEdDSA}
	for i, k := range testKeys(t) {
		if k.Alg != wantAlg[i] {
			t.Errorf("key %d: alg %v, want %v", i, k.Alg, wantAlg[i])
		}
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if _, err := cose.AlgorithmForKey(&p224.PublicKey); !errors.Is(err, cose.ErrBadKey) {
		t.Errorf("P-224: %v", err)
	}
}

func TestCOSEKeyRoundTrip(t *testing.T) {
	keys := testKeys(t)
	for _, k := range keys {
		b, err := cose.MarshalCOSEKey(k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cose.ParseCOSEKey(b)
		if err != nil {
			t.Fatalf("%v: %v", k.Alg, err)
		}
		if !keysEqual(got, k) {
			t.Errorf("%v: round trip gave %+v", k.Alg, got)
		}
		// Deterministic: the same key encodes to the same bytes.
		b2, _ := cose.MarshalCOSEKey(got)
		if !bytes.Equal(b, b2) {
			t.Errorf("%v: re-encoding differs", k.Alg)
		}
		// Every truncation is rejected.
		for i := range b {
			if _, err := cose.ParseCOSEKey(b[:i]); err == nil {
				t.Fatalf("%v: truncation to %d bytes accepted", k.Alg, i)
			}
		}
	}
	set, err := cose.MarshalKeySet(keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cose.ParseKeySet(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) {
		t.Fatalf("%d keys, want %d", len(got), len(keys))
	}
	ks := cose.KeySet(got)
	for _, k := range keys {
		f, ok := ks.Lookup(k.Kid)
		if !ok || !keysEqual(f, k) {
			t.Errorf("Lookup(%s) = %+v, %v", k.Kid, f, ok)
		}
	}
	if _, ok := ks.Lookup([]byte("nope")); ok {
		t.Error("Lookup found an unknown kid")
	}
	// A repeated key is dropped; a different key under the same kid is refused.
	dup, _ := cose.MarshalKeySet([]cose.Key{keys[0], keys[0]})
	if got, err := cose.ParseKeySet(dup); err != nil || len(got) != 1 {
		t.Errorf("repeated key: %d keys, %v", len(got), err)
	}
	clash := keys[1]
	clash.Kid = keys[0].Kid
	bad, _ := cose.MarshalKeySet([]cose.Key{keys[0], clash})
	if _, err := cose.ParseKeySet(bad); !errors.Is(err, cose.ErrBadKey) {
		t.Errorf("kid clash: %v", err)
	}
}

func TestParseCOSEKeyRejects(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pt, _ := priv.PublicKey.Bytes()
	x, y := pt[1:33], pt[33:]
	enc := func(m map[int]any) []byte { b, _ := cose.Marshal(m); return b }
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"private d", enc(map[int]any{1: 2, -1: 1, -2: x, -3: y, -4: make([]byte, 32)})},
		{"no kty", enc(map[int]any{-1: 1, -2: x, -3: y})},
		{"no y", enc(map[int]any{1: 2, -1: 1, -2: x})},
		{"short x", enc(map[int]any{1: 2, -1: 1, -2: x[1:], -3: y})},
		{"off curve", enc(map[int]any{1: 2, -1: 1, -2: x, -3: x})},
		{"curve P-384 for P-256 point", enc(map[int]any{1: 2, -1: 2, -2: x, -3: y})},
		{"alg ES384 on P-256", enc(map[int]any{1: 2, 3: -35, -1: 1, -2: x, -3: y})},
		{"kty RSA", enc(map[int]any{1: 3, -1: []byte{1}, -2: []byte{1}})},
		{"text x", enc(map[int]any{1: 2, -1: 1, -2: "x", -3: y})},
		{"OKP X25519", enc(map[int]any{1: 1, -1: 4, -2: make([]byte, 32)})},
		{"not a map", enc(nil)},
		// map(5) of which two pairs have label kty (1).
		{"duplicate kty", append(append([]byte{0xa5}, enc(map[int]any{1: 2, -1: 1, -2: x, -3: y})[1:]...), 0x01, 0x02)},
	} {
		if _, err := cose.ParseCOSEKey(c.b); !errors.Is(err, cose.ErrBadKey) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// kid and alg are optional: they are derived.
	k, err := cose.ParseCOSEKey(enc(map[int]any{1: 2, -1: 1, -2: x, -3: y}))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cose.KeyID(&priv.PublicKey)
	if !bytes.Equal(k.Kid, want) || k.Alg != gocose.AlgorithmES256 {
		t.Errorf("derived kid %q alg %v", k.Kid, k.Alg)
	}
	if _, err := cose.MarshalCOSEKey(cose.Key{Public: &priv.PublicKey, Alg: gocose.AlgorithmEdDSA}); !errors.Is(err, cose.ErrBadKey) {
		t.Errorf("marshal with mismatched alg: %v", err)
	}
}

func TestJWKS(t *testing.T) {
	keys := testKeys(t)
	b, err := cose.MarshalJWKS(keys)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	want := []struct{ kty, crv, alg string }{{"EC", "P-256", "ES256"}, {"EC", "P-384", "ES384"}, {"EC", "P-521", "ES512"}, {"OKP", "Ed25519", "EdDSA"}}
	for i, j := range raw.Keys {
		if j["kty"] != want[i].kty || j["crv"] != want[i].crv || j["alg"] != want[i].alg || j["use"] != "sig" ||
			j["kid"] != string(keys[i].Kid) || strings.ContainsAny(j["x"], "=+/") {
			t.Errorf("JWK %d: %v", i, j)
		}
	}
	got, err := cose.ParseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if !keysEqual(got[i], keys[i]) {
			t.Errorf("JWK %d round trip: %+v", i, got[i])
		}
	}
	for _, bad := range []string{
		`{}`, `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + strings.Repeat("A", 43) + `","d":"AA"}]}`,
	} {
		if _, err := cose.ParseJWKS([]byte(bad)); !errors.Is(err, cose.ErrBadKey) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

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
