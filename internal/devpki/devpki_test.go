package devpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
)

// A chain verifies as Charter verifies x5chains, and its issuer matches it.
func TestNew(t *testing.T) {
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := New("dev publisher", leafKey, caKey, time.Now().Add(-time.Hour), 24*time.Hour, time.Hour*2)
	if err != nil {
		t.Fatal(err)
	}
	if err := cose.VerifyChain(c.Certs, cose.VerifyOptions{}); err != nil {
		t.Fatalf("chain: %v", err)
	}
	d, err := cose.ParseDIDX509(c.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Match(c.Certs); err != nil {
		t.Fatalf("issuer %s does not match: %v", c.Issuer, err)
	}
	if len(c.DER()) != 2 || string(c.DER()[0]) != string(c.Certs[0].Raw) {
		t.Fatal("DER is not the chain, leaf first")
	}
	// Past the leaf's validity the chain no longer verifies.
	if err := cose.VerifyChain(c.Certs, cose.VerifyOptions{Now: time.Now().Add(3 * time.Hour)}); err == nil {
		t.Fatal("an expired leaf verified")
	}
}
