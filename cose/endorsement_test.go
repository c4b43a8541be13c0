package cose_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/charterlog/charter/cose"
)

// An endorsement verifies with the endorsing key over the endorsed
// certificate only: another key, another certificate, or a changed byte
// is ErrBadEndorsement.
func TestEndorsement(t *testing.T) {
	newKey := func() (*ecdsa.PrivateKey, cose.Key) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ck, err := cose.NewKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return k, ck
	}
	priv, key := newKey()
	_, other := newKey()
	prev := []byte("the previous certificate, DER")
	e, err := cose.SignEndorsement(rand.Reader, priv, key, prev)
	if err != nil {
		t.Fatal(err)
	}
	if err := cose.VerifyEndorsement(e, key, prev); err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), e...)
	flipped[len(flipped)-3] ^= 1
	for name, err := range map[string]error{
		"another key":         cose.VerifyEndorsement(e, other, prev),
		"another certificate": cose.VerifyEndorsement(e, key, []byte("another")),
		"a changed signature": cose.VerifyEndorsement(flipped, key, prev),
		"not COSE":            cose.VerifyEndorsement([]byte{1, 2}, key, prev),
	} {
		if !errors.Is(err, cose.ErrBadEndorsement) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
