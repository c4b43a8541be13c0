package main

import (
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePrivateKey feeds the key parser every file of testdata/keys
// (each form openssl writes) and their mutations. It must never panic; a
// key it returns must sign (its public key marshals) and must survive a
// PKCS #8 round trip. Encrypted keys are decrypted with the seeds'
// passphrase, so mutated KDF parameters reach the cost bounds.
func FuzzParsePrivateKey(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "keys", "*.pem"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed keys in testdata/keys: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parsePrivateKey(data, func() ([]byte, error) { return []byte(testPassphrase), nil })
		if err != nil {
			return
		}
		if s == nil {
			t.Fatal("nil signer without an error")
		}
		if _, err := x509.MarshalPKIXPublicKey(s.Public()); err != nil {
			t.Fatalf("the parsed key's public key does not marshal: %v", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(s)
		if err != nil {
			t.Fatalf("the parsed key does not marshal as PKCS #8: %v", err)
		}
		back, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatalf("the PKCS #8 round trip fails: %v", err)
		}
		if eq, ok := back.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !eq.Equal(s) {
			t.Fatal("the PKCS #8 round trip changes the key")
		}
	})
}
