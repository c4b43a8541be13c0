package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestKeyRelease(t *testing.T) {
	node, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ev := sha256.Sum256([]byte("evidence"))
	secrets := []byte("service key, note key, ledger secret")
	sealed, err := SealSecrets(&node.PublicKey, 4, ev, secrets)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secrets) {
		t.Fatal("sealed bundle contains the secrets in clear")
	}
	got, err := OpenSecrets(node, 4, ev, sealed)
	if err != nil || !bytes.Equal(got, secrets) {
		t.Fatalf("open: %q, %v", got, err)
	}
	otherEv := sha256.Sum256([]byte("other evidence"))
	for name, open := range map[string]func() ([]byte, error){
		"another node's key": func() ([]byte, error) { return OpenSecrets(other, 4, ev, sealed) },
		"another node id":    func() ([]byte, error) { return OpenSecrets(node, 5, ev, sealed) },
		"other evidence":     func() ([]byte, error) { return OpenSecrets(node, 4, otherEv, sealed) },
		"truncated":          func() ([]byte, error) { return OpenSecrets(node, 4, ev, sealed[:len(sealed)-1]) },
		"empty":              func() ([]byte, error) { return OpenSecrets(node, 4, ev, nil) },
	} {
		if _, err := open(); !errors.Is(err, ErrRelease) {
			t.Errorf("%s: err %v, want ErrRelease", name, err)
		}
	}
	// Every single-bit change of the sealed bundle is refused.
	for i := range sealed {
		bad := append([]byte(nil), sealed...)
		bad[i] ^= 0x01
		if _, err := OpenSecrets(node, 4, ev, bad); !errors.Is(err, ErrRelease) {
			t.Fatalf("bit flip at byte %d opened: %v", i, err)
		}
	}
	// Only P-256 node keys.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := SealSecrets(&p384.PublicKey, 4, ev, secrets); err == nil {
		t.Fatal("sealed to a P-384 key")
	}
}
