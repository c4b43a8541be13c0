package cose

import (
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	gocose "github.com/veraison/go-cose"
)

func TestDIDX509Policies(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmES256, stmtLeafSpec{
		cn:     "Charter Publisher: build #7",
		emails: []string{"builds@example.com"},
		dns:    []string{"builder.example.com"},
		uris:   []string{"https://example.com/builder"},
		ekus:   []asn1.ObjectIdentifier{stmtOIDCodeSigning, {1, 3, 6, 1, 4, 1, 311, 10, 3, 13}},
	})
	fp := base64.RawURLEncoding.EncodeToString(fingerprint("sha256", c.der[1]))
	leafFP := base64.RawURLEncoding.EncodeToString(fingerprint("sha256", c.der[0]))
	fp384 := sha512.Sum384(c.der[1])
	fp512 := sha512.Sum512(c.der[1])
	pre := "did:x509:0:sha256:" + fp + "::"
	tests := []struct {
		did   string
		match bool
	}{
		{pre + "subject:CN:Charter%20Publisher%3A%20build%20%237", true},
		{pre + "subject:CN:Charter%20Publisher%3a%20build%20%237", true}, // lower-case hex
		{pre + "subject:CN:Charter%20Publisher%3A%20build%20%237:O:Charter%20Test", true},
		{pre + "subject:O:Charter%20Test", true},
		{pre + "subject:2.5.4.10:Charter%20Test", true}, // O by OID
		{pre + "subject:CN:Charter%20Publisher", false},
		{pre + "subject:CN:Charter%20Publisher%3A%20build%20%237:O:Other", false},
		{pre + "subject:OU:Charter%20Test", false},
		{pre + "san:email:builds%40example.com", true},
		{pre + "san:email:other%40example.com", false},
		{pre + "san:dns:builder.example.com", true},
		{pre + "san:dns:example.com", false},
		{pre + "san:uri:https%3A%2F%2Fexample.com%2Fbuilder", true},
		{pre + "san:uri:https%3A%2F%2Fexample.com%2Fother", false},
		{pre + "eku:1.3.6.1.5.5.7.3.3", true},
		{pre + "eku:1.3.6.1.4.1.311.10.3.13", true},
		{pre + "eku:1.3.6.1.5.5.7.3.1", false},
		{pre + "eku:1.3.6.1.5.5.7.3.3::san:dns:builder.example.com", true},
		{pre + "eku:1.3.6.1.5.5.7.3.3::san:dns:nope.example.com", false},
		{"did:x509:0:sha384:" + base64.RawURLEncoding.EncodeToString(fp384[:]) + "::eku:1.3.6.1.5.5.7.3.3", true},
		{"did:x509:0:sha512:" + base64.RawURLEncoding.EncodeToString(fp512[:]) + "::eku:1.3.6.1.5.5.7.3.3", true},
		// Wrong fingerprint: the leaf's, and another root's.
		{"did:x509:0:sha256:" + leafFP + "::eku:1.3.6.1.5.5.7.3.3", false},
		{"did:x509:0:sha256:" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + "::eku:1.3.6.1.5.5.7.3.3", false},
	}
	for _, tc := range tests {
		d, err := ParseDIDX509(tc.did)
		if err != nil {
			t.Errorf("ParseDIDX509(%q): %v", tc.did, err)
			continue
		}
		err = d.Match(c.certs)
		if tc.match && err != nil {
			t.Errorf("Match(%q): %v", tc.did, err)
		}
		if !tc.match && !errors.Is(err, ErrIssuerMismatch) {
			t.Errorf("Match(%q) = %v, want ErrIssuerMismatch", tc.did, err)
		}
	}
	// A chain without a CA above the leaf cannot match.
	d, _ := ParseDIDX509(pre + "eku:1.3.6.1.5.5.7.3.3")
	if err := d.Match(c.certs[:1]); !errors.Is(err, ErrIssuerMismatch) {
		t.Errorf("Match(leaf only) = %v", err)
	}
}

func TestParseDIDX509Invalid(t *testing.T) {
	fp := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, s := range []string{
		"",
		"did:web:example.com",
		"did:x509:0:sha256:" + fp, // no policy
		"did:x509:1:sha256:" + fp + "::eku:1.2.3",                      // version
		"did:x509:0:sha1:" + fp + "::eku:1.2.3",                        // alg
		"did:x509:0:sha256:" + fp[:42] + "::eku:1.2.3",                 // short
		"did:x509:0:sha256:" + fp + "=::eku:1.2.3",                     // padding
		"did:x509:0:sha256:" + strings.Repeat("A", 64) + "::eku:1.2.3", // sha384 length under sha256
		"did:x509:0:sha256:" + fp + "::eku:1.2.x",
		"did:x509:0:sha256:" + fp + "::eku:1",
		"did:x509:0:sha256:" + fp + "::eku:1.02.3",
		"did:x509:0:sha256:" + fp + "::eku:1.2:3.4",
		"did:x509:0:sha256:" + fp + "::subject:CN",
		"did:x509:0:sha256:" + fp + "::subject:CN:a:CN:b",     // key twice
		"did:x509:0:sha256:" + fp + "::subject:XX:a",          // unknown key
		"did:x509:0:sha256:" + fp + "::subject:CN:a b",        // unencoded space
		"did:x509:0:sha256:" + fp + "::subject:CN:a%2",        // truncated escape
		"did:x509:0:sha256:" + fp + "::subject:CN:a%zz",       // bad escape
		"did:x509:0:sha256:" + fp + "::subject:CN:",           // empty value
		"did:x509:0:sha256:" + fp + "::san:ftp:x",             // san type
		"did:x509:0:sha256:" + fp + "::san:dns",               // san value
		"did:x509:0:sha256:" + fp + "::fulcio-issuer:example", // unsupported policy
		"did:x509:0:sha256:" + fp + "::",
	} {
		if _, err := ParseDIDX509(s); err == nil {
			t.Errorf("ParseDIDX509(%q) succeeded", s)
		}
	}
}

func TestNewDIDX509(t *testing.T) {
	c := newStmtChain(t, gocose.AlgorithmEdDSA, stmtLeafSpec{cn: "charter publisher", ekus: []asn1.ObjectIdentifier{stmtOIDCodeSigning}})
	did, err := NewDIDX509(c.certs, 1, "subject:CN:charter publisher")
	if err != nil {
		t.Fatal(err)
	}
	want := "did:x509:0:sha256:" + base64.RawURLEncoding.EncodeToString(fingerprint("sha256", c.der[1])) + "::subject:CN:charter%20publisher"
	if did != want {
		t.Fatalf("NewDIDX509 = %q, want %q", did, want)
	}
	d, err := ParseDIDX509(did)
	if err != nil || d.Policies[0].Values[1] != "charter publisher" || d.String() != did {
		t.Fatalf("round trip: %v %+v", err, d)
	}
	if got := PctEncode("a:b%c d"); got != "a%3Ab%25c%20d" {
		t.Fatalf("PctEncode = %q", got)
	}
	if _, err := NewDIDX509(c.certs, 1, "subject:CN:"+PctEncode("a:b")); !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("non-matching policy: %v", err)
	}
	if _, err := NewDIDX509(c.certs, 0, "eku:1.3.6.1.5.5.7.3.3"); err == nil {
		t.Fatal("leaf as CA accepted")
	}
	if _, err := NewDIDX509(c.certs, 1); err == nil {
		t.Fatal("no policy accepted")
	}
	if _, err := NewDIDX509(c.certs, 1, "eku:1.3.6.1.5.5.7.3.3", "subject:CN:charter publisher"); err != nil {
		t.Fatal(err)
	}
}
