package appauth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/veraison/go-cose"
)

// now is the fixed clock of every test.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeState is the governed state, as maps of strings.
type fakeState map[string]map[string]string

func (s fakeState) GetKV(m string, key []byte) ([]byte, error) {
	v, ok := s[m][string(key)]
	if !ok {
		return nil, ledger.ErrNotFound
	}
	return []byte(v), nil
}

func (s fakeState) ScanKV(m string, fn func(k, v []byte) error) error {
	keys := make([]string, 0, len(s[m]))
	for k := range s[m] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), []byte(s[m][k])); err != nil {
			return err
		}
	}
	return nil
}

func (s fakeState) set(m, k, v string) {
	if s[m] == nil {
		s[m] = map[string]string{}
	}
	s[m][k] = v
}

// identity is a key and its self-signed certificate.
type identity struct {
	key  crypto.Signer
	cert *x509.Certificate
	pem  string
	id   string
}

func newIdentity(t testing.TB, key crypto.Signer, notBefore, notAfter time.Time) *identity {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &identity{key: key, cert: c, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), id: hexs(sum[:])}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, x := range b {
		out[2*i], out[2*i+1] = digits[x>>4], digits[x&15]
	}
	return string(out)
}

func valid(t testing.TB) *identity {
	return newIdentity(t, nil, now.Add(-time.Hour), now.Add(time.Hour))
}

// request builds a request presenting cert (may be nil) over TLS.
func request(cert *x509.Certificate) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://node/app/x", nil)
	r.TLS = &tls.ConnectionState{}
	if cert != nil {
		r.TLS.PeerCertificates = []*x509.Certificate{cert}
	}
	return r
}

// signCOSE makes a user_cose_sign1 body: tagged COSE_Sign1 with alg, kid
// and extra protected headers.
func signCOSE(t testing.TB, key crypto.Signer, alg cose.Algorithm, kid any, extra map[any]any, payload []byte) []byte {
	t.Helper()
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(alg)
	if kid != nil {
		msg.Headers.Protected[cose.HeaderLabelKeyID] = kid
	}
	for k, v := range extra {
		msg.Headers.Protected[k] = v
	}
	msg.Payload = payload
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	b, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signJWT makes a compact JWS with header and claims, signed per alg.
func signJWT(t testing.TB, key crypto.Signer, header, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	var sig []byte
	var err error
	switch header["alg"] {
	case "RS256":
		d := sha256.Sum256([]byte(signed))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, d[:])
	case "PS256":
		d := sha256.Sum256([]byte(signed))
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		d := sha256.Sum256([]byte(signed))
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, key.(*ecdsa.PrivateKey), d[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	default:
		sig = []byte("not a signature")
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func bearer(r *http.Request, token string) *http.Request {
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// keysOf registers keys under kid as set_jwt_public_signing_keys writes them.
func keysOf(s fakeState, kid string, keys ...govwire.JWTKey) {
	s.set(govwire.MapJWTKeys, kid, mustJSON(keys))
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func contains(err error, want string) bool { return err != nil && strings.Contains(err.Error(), want) }
