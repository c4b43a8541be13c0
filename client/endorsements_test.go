package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
)

type identity struct {
	key  *ecdsa.PrivateKey
	der  []byte
	cose cose.Key
}

func newIdentity(t *testing.T) identity {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Charter Service"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	ck, _ := cose.NewKey(&k.PublicKey)
	return identity{k, der, ck}
}

func certPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// network is /node/network for a service recovered twice: a → b → c, each
// endorsed by the next (by endorser, if set, for the last).
func network(t *testing.T, ids []identity, endorser *identity) []byte {
	type e struct {
		Seqno       uint64 `json:"seqno"`
		Previous    string `json:"previous_service_identity"`
		Next        string `json:"service_identity"`
		Endorsement string `json:"endorsement"`
	}
	var es []e
	for i := 1; i < len(ids); i++ {
		by := ids[i]
		if endorser != nil && i == len(ids)-1 {
			by = *endorser
		}
		sig, err := cose.SignEndorsement(rand.Reader, by.key, by.cose, ids[i-1].der)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e{uint64(i * 10), certPEM(ids[i-1].der), certPEM(ids[i].der), base64.StdEncoding.EncodeToString(sig)})
	}
	b, _ := json.Marshal(map[string]any{"service_certificate": certPEM(ids[len(ids)-1].der), "service_identity_endorsements": es})
	return b
}

// The keys of a service recovered twice are accepted when each recovery's
// endorsement verifies; a key outside the chain, and a forged endorsement,
// are refused.
func TestCheckEndorsedKeys(t *testing.T) {
	a, b, c := newIdentity(t), newIdentity(t), newIdentity(t)
	keys := cose.KeySet{c.cose, b.cose, a.cose}
	n, err := client.CheckEndorsedKeys(network(t, []identity{a, b, c}, nil), keys)
	if err != nil || n != 2 {
		t.Fatalf("a chain of two recoveries: %d, %v", n, err)
	}
	stranger := newIdentity(t)
	if _, err := client.CheckEndorsedKeys(network(t, []identity{a, b, c}, nil), append(keys, stranger.cose)); !errors.Is(err, client.ErrUnendorsedKey) {
		t.Fatalf("a key no recovery endorses: %v", err)
	}
	if _, err := client.CheckEndorsedKeys(network(t, []identity{a, b, c}, &stranger), keys); !errors.Is(err, cose.ErrBadEndorsement) {
		t.Fatalf("an endorsement by another key: %v", err)
	}
	if _, err := client.CheckEndorsedKeys(network(t, []identity{c}, nil), cose.KeySet{c.cose, a.cose}); !errors.Is(err, client.ErrUnendorsedKey) {
		t.Fatalf("a previous key without any recovery: %v", err)
	}
}
