package cose

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
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	gocose "github.com/veraison/go-cose"
)

// stmtTestTime is inside the validity of every certificate newStmtChain makes.
var stmtTestTime = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

type stmtChain struct {
	key   crypto.Signer // leaf key
	certs []*x509.Certificate
	der   [][]byte
	caKey crypto.Signer
}

type stmtLeafSpec struct {
	cn     string
	emails []string
	dns    []string
	uris   []string
	ekus   []asn1.ObjectIdentifier
}

var stmtOIDCodeSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}

func stmtKey(t testing.TB, alg gocose.Algorithm) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case gocose.AlgorithmES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case gocose.AlgorithmES384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case gocose.AlgorithmES512:
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case gocose.AlgorithmPS256, gocose.AlgorithmPS384, gocose.AlgorithmPS512:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case gocose.AlgorithmEdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %v", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newStmtChain makes leaf <- self-signed root, valid 2026-01-01 to 2027-01-01.
func newStmtChain(t testing.TB, leafAlg gocose.Algorithm, spec stmtLeafSpec) *stmtChain {
	t.Helper()
	caKey := stmtKey(t, gocose.AlgorithmES256)
	nb, na := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key := stmtKey(t, leafAlg)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: spec.cn, Organization: []string{"Charter Test"}},
		NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature,
		EmailAddresses: spec.emails, DNSNames: spec.dns, UnknownExtKeyUsage: spec.ekus,
	}
	for _, u := range spec.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		leafTmpl.URIs = append(leafTmpl.URIs, pu)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return &stmtChain{key: key, certs: []*x509.Certificate{leaf, ca}, der: [][]byte{leafDER, caDER}, caKey: caKey}
}

func (c *stmtChain) did(t testing.TB) string {
	t.Helper()
	d, err := NewDIDX509(c.certs, 1, "subject:CN:"+c.certs[0].Subject.CommonName)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (c *stmtChain) sign(t testing.TB, opts SignOptions, payload []byte) []byte {
	t.Helper()
	if opts.Issuer == "" {
		opts.Issuer = c.did(t)
	}
	if opts.Subject == "" {
		opts.Subject = "urn:charter:test"
	}
	if opts.X5Chain == nil && opts.Kid == nil {
		opts.X5Chain = c.der
	}
	if opts.IssuedAt.IsZero() {
		opts.IssuedAt = stmtTestTime
	}
	b, err := SignStatement(rand.Reader, c.key, opts, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stmtVerifyOpts() VerifyOptions { return VerifyOptions{Now: stmtTestTime} }

func TestSignParseVerify(t *testing.T) {
	for _, alg := range []gocose.Algorithm{gocose.AlgorithmES256, gocose.AlgorithmES384, gocose.AlgorithmES512,
		gocose.AlgorithmPS256, gocose.AlgorithmPS384, gocose.AlgorithmPS512, gocose.AlgorithmEdDSA} {
		t.Run(alg.String(), func(t *testing.T) {
			c := newStmtChain(t, alg, stmtLeafSpec{cn: "publisher one"})
			payload := []byte(`{"hello":"world"}`)
			b := c.sign(t, SignOptions{Alg: alg, ContentType: "application/json"}, payload)
			s, err := ParseStatement(b, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if s.Alg != alg || s.ContentType != "application/json" || s.CWT.Subject != "urn:charter:test" ||
				s.CWT.IssuedAt == nil || *s.CWT.IssuedAt != stmtTestTime.Unix() || len(s.X5Chain) != 2 || s.HashEnvelope != nil {
				t.Fatalf("parsed fields: %+v", s)
			}
			iss, err := s.Verify(stmtVerifyOpts())
			if err != nil {
				t.Fatal(err)
			}
			if iss.DID != c.did(t) || iss.Chain[0] != s.Chain[0] {
				t.Fatalf("issuer %+v", iss)
			}
			if err := s.VerifyPayload(payload); err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyPayload([]byte("other")); !errors.Is(err, ErrPayloadMismatch) {
				t.Fatalf("VerifyPayload(other) = %v", err)
			}
			// Unprotected header is empty, so the leaf entry is the hash of the bytes.
			if s.LeafEntry() != sha256.Sum256(b) {
				t.Fatal("LeafEntry differs from SHA-256 of a statement with an empty unprotected header")
			}
			// The allowed list is enforced.
			other := gocose.AlgorithmES256
			if alg == other {
				other = gocose.AlgorithmEdDSA
			}
			if _, err := s.Verify(VerifyOptions{Now: stmtTestTime, AllowedAlgs: []gocose.Algorithm{other}}); !errors.Is(err, ErrAlgorithmNotAllowed) {
				t.Fatalf("Verify with alg not allowed = %v", err)
			}
		})
	}
}

func TestHashEnvelope(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{cn: "p"})
	artifact := bytes.Repeat([]byte("artifact "), 1000)
	for _, ha := range []gocose.Algorithm{0, AlgorithmSHA256, AlgorithmSHA384, AlgorithmSHA512} {
		b := c.sign(t, SignOptions{HashEnvelope: true, PayloadHashAlg: ha, ContentType: "application/spdx+json", PayloadLocation: "https://example.com/a"}, artifact)
		s, err := ParseStatement(b, ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := ha
		if want == 0 {
			want = AlgorithmSHA256
		}
		if s.HashEnvelope == nil || s.HashEnvelope.PayloadHashAlg != want || s.HashEnvelope.PreimageContentType != "application/spdx+json" ||
			s.HashEnvelope.PayloadLocation != "https://example.com/a" || s.ContentType != nil {
			t.Fatalf("hash envelope fields: %+v %+v", s, s.HashEnvelope)
		}
		if _, err := s.Verify(stmtVerifyOpts()); err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyPayload(artifact); err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyPayload(artifact[1:]); !errors.Is(err, ErrPayloadMismatch) {
			t.Fatalf("VerifyPayload(changed) = %v", err)
		}
	}
}

func TestKidStatement(t *testing.T) {
	key := stmtKey(t, gocose.AlgorithmES256)
	b, err := SignStatement(rand.Reader, key, SignOptions{Issuer: "did:web:example.com", Subject: "s", Kid: []byte("k1")}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStatement(b, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(VerifyOptions{}); !errors.Is(err, ErrUnknownIssuerKey) {
		t.Fatalf("no IssuerKey: %v", err)
	}
	lookup := func(iss string, kid []byte) (crypto.PublicKey, error) {
		if iss == "did:web:example.com" && string(kid) == "k1" {
			return key.Public(), nil
		}
		return nil, errors.New("not registered")
	}
	if _, err := s.Verify(VerifyOptions{IssuerKey: lookup}); err != nil {
		t.Fatal(err)
	}
	other := stmtKey(t, gocose.AlgorithmES256)
	if _, err := s.Verify(VerifyOptions{IssuerKey: func(string, []byte) (crypto.PublicKey, error) { return other.Public(), nil }}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	p384 := stmtKey(t, gocose.AlgorithmES384)
	if _, err := s.Verify(VerifyOptions{IssuerKey: func(string, []byte) (crypto.PublicKey, error) { return p384.Public(), nil }}); !errors.Is(err, ErrAlgorithmNotAllowed) {
		t.Fatalf("ES256 with a P-384 key: %v", err)
	}
	b2, _ := SignStatement(rand.Reader, key, SignOptions{Issuer: "did:web:other", Subject: "s", Kid: []byte("k1")}, []byte("x"))
	s2, _ := ParseStatement(b2, ParseOptions{})
	if _, err := s2.Verify(VerifyOptions{IssuerKey: lookup}); !errors.Is(err, ErrUnknownIssuerKey) {
		t.Fatalf("unknown issuer: %v", err)
	}
}

// encodeStatement builds 18([protected, unprotected, payload, sig]) from parts.
func encodeStatement(t testing.TB, tag uint64, protected []byte, unprotected any, payload, sig []byte) []byte {
	t.Helper()
	var content any = []any{protected, unprotected, payload, sig}
	if tag != 0 {
		content = cbor.Tag{Number: tag, Content: content}
	}
	b, err := Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stmtResign signs protected||payload with key and encodes a tagged statement.
func stmtResign(t testing.TB, key crypto.Signer, alg gocose.Algorithm, protected, payload []byte) []byte {
	t.Helper()
	s, err := gocose.NewSigner(alg, key)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(rand.Reader, SigStructure(protected, payload))
	if err != nil {
		t.Fatal(err)
	}
	return encodeStatement(t, 18, protected, map[any]any{}, payload, sig)
}

func stmtMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInputs(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{cn: "p"})
	good := c.sign(t, SignOptions{ContentType: "text/plain"}, []byte("payload"))
	s, err := ParseStatement(good, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	did := c.did(t)
	es256 := int64(gocose.AlgorithmES256)
	hdr := func(extra map[any]any) []byte {
		m := map[any]any{int64(1): es256, int64(15): map[any]any{int64(1): did, int64(2): "sub"}, int64(33): c.der}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return stmtMarshal(t, m)
	}
	// Protected header with label 1 twice, written by hand.
	dupProt := append([]byte{0xa3, 0x01, 0x26, 0x01, 0x26}, stmtMarshal(t, int64(15))...)
	dupProt = append(dupProt, stmtMarshal(t, map[any]any{int64(1): did, int64(2): "sub"})...)

	otherChain := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{cn: "p"})
	// leaf of c with the root of otherChain: the link does not verify.
	brokenLink := [][]byte{c.der[0], otherChain.der[1]}

	tests := []struct {
		name string
		in   []byte
		opts VerifyOptions
		want error
	}{
		{"non-CBOR", []byte("hello, world"), stmtVerifyOpts(), ErrNotCOSE},
		{"empty", nil, stmtVerifyOpts(), ErrNotCOSE},
		{"not an array", stmtMarshal(t, cbor.Tag{Number: 18, Content: "x"}), stmtVerifyOpts(), ErrNotCOSE},
		{"array of 3", stmtMarshal(t, cbor.Tag{Number: 18, Content: []any{[]byte{}, map[any]any{}, []byte{}}}), stmtVerifyOpts(), ErrNotCOSE},
		{"untagged", encodeStatement(t, 0, s.RawProtected, map[any]any{}, s.Payload, s.Signature), stmtVerifyOpts(), ErrUntagged},
		{"wrong tag 998", encodeStatement(t, 998, s.RawProtected, map[any]any{}, s.Payload, s.Signature), stmtVerifyOpts(), ErrUntagged},
		{"protected is text", encodeStatement(t, 18, nil, map[any]any{}, s.Payload, s.Signature)[:0], stmtVerifyOpts(), ErrNotCOSE},
		{"empty signature", encodeStatement(t, 18, s.RawProtected, map[any]any{}, s.Payload, []byte{}), stmtVerifyOpts(), ErrNotCOSE},
		{"missing CWT", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(15): nil}), []byte("p")), stmtVerifyOpts(), ErrMissingCWTClaims},
		{"missing iss", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(15): map[any]any{int64(2): "sub"}}), []byte("p")), stmtVerifyOpts(), ErrMissingCWTClaims},
		{"iss not text", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(15): map[any]any{int64(1): []byte("x"), int64(2): "sub"}}), []byte("p")), stmtVerifyOpts(), ErrMissingCWTClaims},
		{"missing sub", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(15): map[any]any{int64(1): did}}), []byte("p")), stmtVerifyOpts(), ErrMissingCWTClaims},
		{"alg absent", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(1): nil}), []byte("p")), stmtVerifyOpts(), ErrAlgorithmNotAllowed},
		{"alg unknown", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(1): int64(-999)}), []byte("p")), stmtVerifyOpts(), ErrAlgorithmNotAllowed},
		{"alg text", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(1): "ES256"}), []byte("p")), stmtVerifyOpts(), ErrAlgorithmNotAllowed},
		{"alg not allowed", good, VerifyOptions{Now: stmtTestTime, AllowedAlgs: []gocose.Algorithm{gocose.AlgorithmEdDSA}}, ErrAlgorithmNotAllowed},
		{"alg does not fit key", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(1): int64(gocose.AlgorithmES384)}), []byte("p")), stmtVerifyOpts(), ErrAlgorithmNotAllowed},
		{"no kid or x5chain", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(33): nil}), []byte("p")), stmtVerifyOpts(), ErrMissingKey},
		{"bad signature", encodeStatement(t, 18, s.RawProtected, map[any]any{}, []byte("payloae"), s.Signature), stmtVerifyOpts(), ErrBadSignature},
		{"bad chain: wrong root", good, VerifyOptions{Now: stmtTestTime, TrustedCAs: [][32]byte{sha256.Sum256(otherChain.der[1])}}, ErrBadChain},
		{"bad chain: broken link", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(33): brokenLink}), []byte("p")), stmtVerifyOpts(), ErrBadChain},
		{"bad chain: expired", good, VerifyOptions{Now: stmtTestTime.AddDate(2, 0, 0)}, ErrBadChain},
		{"bad chain: garbage cert", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(33): []byte("not a cert")}), []byte("p")), stmtVerifyOpts(), ErrBadChain},
		{"issuer mismatch", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(15): map[any]any{int64(1): otherChain.did(t), int64(2): "sub"}}), []byte("p")), stmtVerifyOpts(), ErrIssuerMismatch},
		{"issuer not did:x509", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(15): map[any]any{int64(1): "https://example.com", int64(2): "sub"}}), []byte("p")), stmtVerifyOpts(), ErrIssuerMismatch},
		{"oversize", append(bytes.Repeat([]byte{0}, DefaultMaxStatementSize), 0), stmtVerifyOpts(), ErrTooLarge},
		{"truncated", good[:len(good)-1], stmtVerifyOpts(), ErrNotCOSE},
		{"trailing bytes", append(append([]byte{}, good...), 0x00), stmtVerifyOpts(), ErrNotCOSE},
		{"duplicate label in protected", stmtResign(t, c.key, gocose.AlgorithmES256, dupProt, []byte("p")), stmtVerifyOpts(), ErrBadHeader},
		{"protected not a map", stmtResign(t, c.key, gocose.AlgorithmES256, stmtMarshal(t, []int{1}), []byte("p")), stmtVerifyOpts(), ErrBadHeader},
		{"bstr label", stmtResign(t, c.key, gocose.AlgorithmES256, append([]byte{0xa1, 0x41, 0x01}, 0x01), []byte("p")), stmtVerifyOpts(), ErrBadHeader},
		{"crit unknown label", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(2): []any{"x-ext"}, "x-ext": int64(1)}), []byte("p")), stmtVerifyOpts(), ErrBadHeader},
		{"crit absent label", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(2): []any{int64(99)}}), []byte("p")), stmtVerifyOpts(), ErrBadHeader},
		{"hash envelope with label 3", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(258): int64(-16), int64(3): "text/plain"}), make([]byte, 32)), stmtVerifyOpts(), ErrBadHeader},
		{"hash envelope wrong digest length", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(258): int64(-16)}), make([]byte, 31)), stmtVerifyOpts(), ErrBadHeader},
		{"hash envelope unknown hash", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(258): int64(-99)}), make([]byte, 32)), stmtVerifyOpts(), ErrBadHeader},
		{"259 without 258", stmtResign(t, c.key, gocose.AlgorithmES256, hdr(map[any]any{int64(259): "text/plain"}), []byte("p")), stmtVerifyOpts(), ErrBadHeader},
		{"label in both buckets", encodeStatement(t, 18, s.RawProtected, map[any]any{int64(1): es256}, s.Payload, s.Signature), stmtVerifyOpts(), ErrBadHeader},
		{"detached payload", encodeStatement(t, 18, s.RawProtected, map[any]any{}, nil, s.Signature), stmtVerifyOpts(), ErrDetachedPayload},
	}
	tests[6].in = stmtMarshal(t, cbor.Tag{Number: 18, Content: []any{"text", map[any]any{}, []byte{}, []byte{1}}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseStatement(tc.in, ParseOptions{})
			if err == nil {
				_, err = s.Verify(tc.opts)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The node's two steps (timed apart) decide as Verify does,
			// and only the signature step refuses a bad signature.
			if s != nil {
				iss, err := s.VerifyIssuer(tc.opts)
				if tc.want == ErrBadSignature && err != nil {
					t.Fatalf("VerifyIssuer refused a statement whose only fault is its signature: %v", err)
				}
				if err == nil {
					err = s.VerifySignature(iss.Key)
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("VerifyIssuer then VerifySignature: got %v, want %v", err, tc.want)
				}
			}
			// Each failure maps to exactly one sentinel.
			for _, other := range stmtSentinels {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("%v also matches %v", err, other)
				}
			}
		})
	}
}

var stmtSentinels = []error{ErrTooLarge, ErrNotCOSE, ErrUntagged, ErrBadHeader, ErrMissingCWTClaims, ErrAlgorithmNotAllowed,
	ErrMissingKey, ErrBadChain, ErrIssuerMismatch, ErrUnknownIssuerKey, ErrBadSignature, ErrDetachedPayload, ErrPayloadMismatch}

func TestMaxSizeOption(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmEdDSA, stmtLeafSpec{cn: "p"})
	b := c.sign(t, SignOptions{}, []byte("p"))
	if _, err := ParseStatement(b, ParseOptions{MaxSize: len(b) - 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxSize len-1: %v", err)
	}
	if _, err := ParseStatement(b, ParseOptions{MaxSize: len(b)}); err != nil {
		t.Fatalf("MaxSize len: %v", err)
	}
}

// TestMangle: every one-byte change and every truncation of a valid
// statement fails ParseStatement or Verify, without panicking.
func TestMangle(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmEdDSA, stmtLeafSpec{cn: "p"})
	cases := map[string][]byte{
		"embedded":      c.sign(t, SignOptions{ContentType: "application/json"}, []byte(`{"a":1}`)),
		"hash envelope": c.sign(t, SignOptions{HashEnvelope: true, ContentType: "application/json", PayloadLocation: "https://x"}, []byte(`{"a":1}`)),
	}
	// A third-party statement: PS384 with a 3-certificate x5chain.
	if b, err := os.ReadFile(filepath.Join(stmtInteropDir, "scitt-ccf-ledger", "test", "payloads", "manifest.spdx.json.sha384.digest.cose")); err == nil {
		cases["interop manifest.spdx"] = b
	}
	opts := VerifyOptions{Now: stmtTestTime, Chains: NewChainCache(4), SkipChainTime: true}
	for name, good := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := ParseStatement(good, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Verify(opts); err != nil {
				t.Fatal(err)
			}
			check := func(what string, b []byte) {
				s, err := ParseStatement(b, ParseOptions{})
				if err != nil {
					return
				}
				if _, err := s.Verify(opts); err == nil {
					t.Errorf("%s: mangled statement verified", what)
				}
			}
			buf := make([]byte, len(good))
			for i := range good {
				copy(buf, good)
				buf[i] ^= 0x01
				check("flip at "+itoa(i), buf)
			}
			for n := 0; n < len(good); n++ {
				check("truncate to "+itoa(n), good[:n])
			}
		})
	}
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func TestLeafEntryIgnoresUnprotected(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{cn: "p"})
	b := c.sign(t, SignOptions{}, []byte("p"))
	s, _ := ParseStatement(b, ParseOptions{})
	withU := encodeStatement(t, 18, s.RawProtected, map[any]any{int64(394): []any{[]byte("receipt")}}, s.Payload, s.Signature)
	s2, err := ParseStatement(withU, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.LeafEntry() != s2.LeafEntry() || s.LeafEntry() != sha256.Sum256(b) {
		t.Fatal("LeafEntry depends on the unprotected header")
	}
	if _, err := s2.Verify(stmtVerifyOpts()); err != nil {
		t.Fatal(err)
	}
}

func TestChainCache(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{cn: "p"})
	cache := NewChainCache(1)
	b := c.sign(t, SignOptions{}, []byte("p"))
	s, _ := ParseStatement(b, ParseOptions{Chains: cache})
	opts := VerifyOptions{Now: stmtTestTime, Chains: cache}
	for i := 0; i < 2; i++ {
		if _, err := s.Verify(opts); err != nil {
			t.Fatal(err)
		}
	}
	// A second statement with the same chain shares its parsed certificates.
	s2, err := ParseStatement(c.sign(t, SignOptions{}, []byte("q")), ParseOptions{Chains: cache})
	if err != nil || s2.Chain[0] != s.Chain[0] {
		t.Fatalf("parsed chain not shared: %v", err)
	}
	// A cached chain does not make a bad signature verify.
	bad := encodeStatement(t, 18, s.RawProtected, map[any]any{}, []byte("x"), s.Signature)
	s3, err := ParseStatement(bad, ParseOptions{Chains: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Verify(opts); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad signature with cached chain: %v", err)
	}
	// A chain that did not verify is not remembered as verified.
	other := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{cn: "p"})
	broken := []*x509.Certificate{c.certs[0], other.certs[1]}
	for i := 0; i < 2; i++ {
		if err := VerifyChain(broken, opts); !errors.Is(err, ErrBadChain) {
			t.Fatalf("broken chain, try %d: %v", i, err)
		}
	}
	// Time and trust are still checked on a cache hit.
	opts.Now = stmtTestTime.AddDate(5, 0, 0)
	if _, err := s.Verify(opts); !errors.Is(err, ErrBadChain) {
		t.Fatalf("expired chain from cache: %v", err)
	}
	opts.Now = stmtTestTime
	opts.TrustedCAs = [][32]byte{{1}}
	if _, err := s.Verify(opts); !errors.Is(err, ErrBadChain) {
		t.Fatalf("untrusted root from cache: %v", err)
	}
	opts.TrustedCAs = [][32]byte{sha256.Sum256(c.der[1])}
	if _, err := s.Verify(opts); err != nil {
		t.Fatal(err)
	}
}

func TestSignStatementErrors(t *testing.T) {
	key := stmtKey(t, gocose.AlgorithmES256)
	for name, tc := range map[string]struct {
		opts SignOptions
		want error
	}{
		"no issuer":          {SignOptions{Subject: "s", Kid: []byte("k")}, ErrMissingCWTClaims},
		"no key id":          {SignOptions{Issuer: "i", Subject: "s"}, ErrMissingKey},
		"alg mismatch":       {SignOptions{Issuer: "i", Subject: "s", Kid: []byte("k"), Alg: gocose.AlgorithmEdDSA}, ErrAlgorithmNotAllowed},
		"location sans hash": {SignOptions{Issuer: "i", Subject: "s", Kid: []byte("k"), PayloadLocation: "x"}, ErrBadHeader},
	} {
		if _, err := SignStatement(rand.Reader, key, tc.opts, []byte("p")); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestErrorsSayWhat(t *testing.T) {
	_, err := ParseStatement([]byte{0x84, 0x40, 0xa0, 0xf6, 0x41, 0x00}, ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), "tag") {
		t.Fatalf("untagged error %v should mention the tag", err)
	}
}

// BenchmarkParseAndVerifyES256 measures ParseStatement + Verify of a ~1 KiB
// ES256 statement with a 2-certificate x5chain and did:x509 issuer, with and
// without the chain cache, and a kid statement; BenchmarkECDSAVerifyP256 is
// the floor.
func BenchmarkParseAndVerifyES256(b *testing.B) {
	c := newStmtChain(b, gocose.AlgorithmES256, stmtLeafSpec{cn: "bench"})
	stmt := c.sign(b, SignOptions{ContentType: "application/json"}, bytes.Repeat([]byte("x"), 256))
	kidStmt, err := SignStatement(rand.Reader, c.key, SignOptions{Issuer: "did:web:example.com", Subject: "s", Kid: []byte("k1")}, bytes.Repeat([]byte("x"), 1000))
	if err != nil {
		b.Fatal(err)
	}
	runP := func(b *testing.B, in []byte, popts ParseOptions, opts VerifyOptions) {
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			s, err := ParseStatement(in, popts)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Verify(opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	run := func(b *testing.B, in []byte, opts VerifyOptions) { runP(b, in, ParseOptions{}, opts) }
	b.Run("x5chain", func(b *testing.B) { run(b, stmt, stmtVerifyOpts()) })
	b.Run("x5chain-cached", func(b *testing.B) {
		cache := NewChainCache(16)
		runP(b, stmt, ParseOptions{Chains: cache}, VerifyOptions{Now: stmtTestTime, Chains: cache})
	})
	b.Run("kid", func(b *testing.B) {
		pub := c.key.Public()
		run(b, kidStmt, VerifyOptions{IssuerKey: func(string, []byte) (crypto.PublicKey, error) { return pub, nil }})
	})
}

func BenchmarkECDSAVerifyP256(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("x"))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, d[:])
	for b.Loop() {
		if !ecdsa.VerifyASN1(&k.PublicKey, d[:], sig) {
			b.Fatal("verify")
		}
	}
}

// TestProtectedLabelTypes: RFC 9052 §3 "label = int / tstr"; every other
// key type in the protected header or the CWT claims is ErrBadHeader.
func TestProtectedLabelTypes(t *testing.T) {
	for _, tc := range []struct {
		name string
		prot []byte
		want error
	}{
		{"array key", []byte{0xa1, 0x81, 0x01, 0x01}, ErrBadHeader},
		{"tagged array key", []byte{0xa1, 0xc1, 0x81, 0x00, 0x01}, ErrBadHeader},
		{"map key", []byte{0xa1, 0xa0, 0x01}, ErrBadHeader},
		{"float key", []byte{0xa1, 0xf9, 0x3c, 0x00, 0x01}, ErrBadHeader},
		{"bool key", []byte{0xa1, 0xf4, 0x01}, ErrBadHeader},
		{"uint64 key beyond int64", []byte{0xa1, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrBadHeader},
		{"nint key beyond int64", []byte{0xa1, 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrBadHeader},
		{"bignum key", []byte{0xa1, 0xc2, 0x41, 0x01, 0x01}, ErrBadHeader},
		{"bignum alg", []byte{0xa1, 0x01, 0xc2, 0x41, 0x01}, ErrAlgorithmNotAllowed},
		{"array key in CWT claims", []byte{0xa1, 0x0f, 0xa1, 0x81, 0x00, 0x01}, ErrBadHeader},
		{"trailing byte in protected", []byte{0xa0, 0x00}, ErrBadHeader},
		{"indefinite map", []byte{0xbf, 0xff}, ErrBadHeader},
	} {
		b := encodeStatement(t, 18, tc.prot, map[any]any{}, []byte{1}, []byte{1})
		if _, err := ParseStatement(b, ParseOptions{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// BenchmarkParseStatement: parsing alone (the chain cached), the part of
// a registration's cost that is Charter's own beside the signature check.
func BenchmarkParseStatement(b *testing.B) {
	c := newStmtChain(b, gocose.AlgorithmES256, stmtLeafSpec{cn: "bench"})
	stmt := c.sign(b, SignOptions{ContentType: "application/json"}, bytes.Repeat([]byte("x"), 1024))
	cache := NewChainCache(16)
	b.ReportAllocs()
	b.SetBytes(int64(len(stmt)))
	for b.Loop() {
		if _, err := ParseStatement(stmt, ParseOptions{Chains: cache}); err != nil {
			b.Fatal(err)
		}
	}
}

// A statement whose tag 18 is written in a longer head than it needs
// (RFC 8949 allows it) parses and verifies as the short form does, and its
// fields are the input's own bytes, not a copy; a longer head naming
// another tag is still refused as untagged.
func TestLongTagHead(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{cn: "p"})
	b := c.sign(t, SignOptions{}, []byte("payload"))
	if b[0] != 0xd2 {
		t.Fatalf("statement starts with %#x, want tag 18 in one byte", b[0])
	}
	for _, head := range [][]byte{{0xd8, 0x12}, {0xd9, 0x00, 0x12}, {0xda, 0, 0, 0, 0x12}} {
		long := append(append([]byte{}, head...), b[1:]...)
		s, err := ParseStatement(long, ParseOptions{})
		if err != nil {
			t.Fatalf("tag 18 in %d bytes: %v", len(head), err)
		}
		if _, err := s.Verify(stmtVerifyOpts()); err != nil {
			t.Fatalf("tag 18 in %d bytes: %v", len(head), err)
		}
		if &s.Signature[0] != &long[len(long)-len(s.Signature)] {
			t.Fatalf("tag 18 in %d bytes: the signature is a copy of the input's bytes", len(head))
		}
		other := append(append([]byte{}, head...), b[1:]...)
		other[len(head)-1] = 0x11
		if _, err := ParseStatement(other, ParseOptions{}); !errors.Is(err, ErrUntagged) {
			t.Fatalf("tag 17 in %d bytes: %v, want ErrUntagged", len(head), err)
		}
	}
}
