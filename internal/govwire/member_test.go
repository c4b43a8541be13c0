package govwire_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/govwire"
)

// member is a test member: a key and its self-signed certificate.
type member struct {
	name   string
	signer crypto.Signer
	cert   *x509.Certificate
}

// newMember generates a member with a key of the given kind: "p256",
// "p384", "p521", "ed25519", "rsa2048" or "rsa1024".
func newMember(t testing.TB, kind string) member {
	t.Helper()
	var (
		s   crypto.Signer
		err error
	)
	switch kind {
	case "p256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		s, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	case "rsa2048":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa1024":
		s, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "member " + kind},
		NotBefore:    time.Unix(1700000000, 0),
		NotAfter:     time.Unix(1900000000, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return member{name: kind, signer: s, cert: cert}
}

// TestMemberIDOfMatchesOpenSSL checks MemberIDOf against a fingerprint
// computed by another tool: testdata/member_p256.pem was made with openssl,
// and its id with `openssl x509 -noout -fingerprint -sha256` (colons
// removed, lowercased), which is how CCF documents member ids.
func TestMemberIDOfMatchesOpenSSL(t *testing.T) {
	const want = "e75f0098d4b3fad182b3db5e8f3b1bc271e374b0e1ee8a768787c2b5d539eb6d"
	b, err := os.ReadFile("testdata/member_p256.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("testdata/member_p256.pem: no PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := govwire.MemberIDOf(cert); got != want {
		t.Errorf("MemberIDOf = %s, want %s", got, want)
	}
}

func TestMemberIDOf(t *testing.T) {
	if got := govwire.MemberIDOf(nil); got != "" {
		t.Errorf("MemberIDOf(nil) = %q, want \"\"", got)
	}
	a, b := newMember(t, "p256"), newMember(t, "p256")
	ida, idb := govwire.MemberIDOf(a.cert), govwire.MemberIDOf(b.cert)
	if ida == idb {
		t.Errorf("two certificates share the id %s", ida)
	}
	if len(ida) != 64 || strings.ToLower(ida) != ida {
		t.Errorf("id %q is not 64 lowercase hex digits", ida)
	}
	// The id names the certificate, not the key: a second certificate for
	// the same key is another member, as in CCF.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "again"},
		NotBefore: time.Unix(1700000000, 0), NotAfter: time.Unix(1900000000, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, a.signer.Public(), a.signer)
	if err != nil {
		t.Fatal(err)
	}
	again, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if govwire.MemberIDOf(again) == ida {
		t.Error("a re-issued certificate for the same key has the same member id")
	}
}
