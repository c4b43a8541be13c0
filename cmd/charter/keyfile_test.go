package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/keys holds keys written by openssl 3.0 as CCF's tools write
// them (see the commands in testdata/keys/README).
const testPassphrase = "charter-test"

func keyFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixedPassphrase(p string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(p), nil }
}

func TestParsePrivateKeyForms(t *testing.T) {
	for _, c := range []struct {
		file  string
		curve elliptic.Curve // nil: Ed25519
	}{
		{"keygenerator_p384.pem", elliptic.P384()},
		{"keygenerator_p256.pem", elliptic.P256()},
		{"sec1_only_p384.pem", elliptic.P384()},
		{"pkcs8_p384.pem", elliptic.P384()},
		{"pkcs8_encrypted_aes256.pem", elliptic.P384()},
		{"pkcs8_encrypted_scrypt.pem", elliptic.P256()},
		{"legacy_encrypted_sec1.pem", elliptic.P256()},
		{"pkcs8_ed25519.pem", nil},
	} {
		asked := false
		s, err := parsePrivateKey(keyFile(t, c.file), func() ([]byte, error) { asked = true; return []byte(testPassphrase), nil })
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if encrypted := strings.Contains(c.file, "encrypted"); asked != encrypted {
			t.Errorf("%s: passphrase asked %v, want %v", c.file, asked, encrypted)
		}
		switch k := s.Public().(type) {
		case *ecdsa.PublicKey:
			if k.Curve != c.curve {
				t.Errorf("%s: curve %s", c.file, k.Curve.Params().Name)
			}
		case ed25519.PublicKey:
			if c.curve != nil {
				t.Errorf("%s: an Ed25519 key", c.file)
			}
		default:
			t.Errorf("%s: a %T", c.file, k)
		}
	}
	// The keygenerator.sh key is the one its certificate holds, and the
	// encrypted copies of it decrypt to the same key.
	blk, _ := pem.Decode(keyFile(t, "keygenerator_p384_cert.pem"))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"keygenerator_p384.pem", "pkcs8_encrypted_aes256.pem"} {
		s, err := parsePrivateKey(keyFile(t, f), fixedPassphrase(testPassphrase))
		if err != nil || !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
			t.Errorf("%s is not the key of keygenerator_p384_cert.pem: %v", f, err)
		}
	}
}

// Each failure names the form that could not be read.
func TestParsePrivateKeyErrors(t *testing.T) {
	noPass := func() ([]byte, error) { return nil, errors.New("no passphrase given") }
	for _, c := range []struct {
		name string
		data []byte
		pass func() ([]byte, error)
		want string
	}{
		{"encrypted PKCS #8, wrong passphrase", keyFile(t, "pkcs8_encrypted_aes256.pem"), fixedPassphrase("wrong"), "encrypted PKCS #8 (ENCRYPTED PRIVATE KEY): cannot decrypt (wrong passphrase"},
		{"encrypted PKCS #8, empty passphrase", keyFile(t, "pkcs8_encrypted_aes256.pem"), fixedPassphrase(""), "encrypted PKCS #8 (ENCRYPTED PRIVATE KEY): the passphrase is empty"},
		{"encrypted PKCS #8, no passphrase", keyFile(t, "pkcs8_encrypted_scrypt.pem"), noPass, "encrypted PKCS #8 (ENCRYPTED PRIVATE KEY): no passphrase given"},
		{"legacy encrypted, wrong passphrase", keyFile(t, "legacy_encrypted_sec1.pem"), fixedPassphrase("wrong"), "legacy encrypted PEM (EC PRIVATE KEY, Proc-Type 4,ENCRYPTED): cannot decrypt"},
		{"explicit curve parameters", keyFile(t, "explicit_params.pem"), noPass, "SEC 1 EC PRIVATE KEY"},
		{"parameters of another curve", keyFile(t, "mismatched_params.pem"), noPass, "EC PARAMETERS before the SEC 1 key: they name curve 1.2.840.10045.3.1.7, the key is on P-384"},
		{"a certificate only", keyFile(t, "keygenerator_p384_cert.pem"), noPass, "no PEM private key among the blocks (CERTIFICATE)"},
		{"not PEM", []byte("garbage"), noPass, "no PEM private key: the file holds no PEM block"},
		{"two keys", append(keyFile(t, "pkcs8_p384.pem"), keyFile(t, "sec1_only_p384.pem")...), noPass, "two private keys (PRIVATE KEY and EC PRIVATE KEY)"},
		{"SEC 1 bytes labelled PKCS #8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPEMBytes(t, "sec1_only_p384.pem")}), noPass, "PKCS #8 PRIVATE KEY: "},
		{"PBKDF2 asking 2^30 iterations", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: costlyPBKDF2(t, 1<<30)}), fixedPassphrase(testPassphrase), "PBKDF2 with 1073741824 iterations; at most 10000000"},
		{"too large", make([]byte, maxKeyFileBytes+1), noPass, "too large for a key file"},
	} {
		_, err := parsePrivateKey(c.data, c.pass)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func mustPEMBytes(t *testing.T, name string) []byte {
	t.Helper()
	blk, _ := pem.Decode(keyFile(t, name))
	return blk.Bytes
}

// costlyPBKDF2 is an EncryptedPrivateKeyInfo whose PBKDF2 asks iterations.
func costlyPBKDF2(t *testing.T, iterations int) []byte {
	t.Helper()
	kdf, err := asn1.Marshal(struct {
		Salt       []byte
		Iterations int
	}{make([]byte, 8), iterations})
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := asn1.Marshal(make([]byte, 16))
	params, err := asn1.Marshal(pbes2Params{
		KDF: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		Enc: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, Parameters: asn1.RawValue{FullBytes: iv}},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(encryptedKeyInfo{Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}}, Data: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// The passphrase comes from the file's first line, else the environment;
// with neither and no terminal, the error says how to give one.
func TestPassphraseSource(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pass")
	if err := os.WriteFile(f, []byte(testPassphrase+"\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join("testdata", "keys", "pkcs8_encrypted_aes256.pem")
	if _, err := readPrivateKey(key, passphraseSource{file: f}); err != nil {
		t.Fatalf("--key-passphrase-file: %v", err)
	}
	t.Setenv(passphraseEnv, testPassphrase)
	if _, err := readPrivateKey(key, passphraseSource{}); err != nil {
		t.Fatalf("$%s: %v", passphraseEnv, err)
	}
	os.Unsetenv(passphraseEnv)
	// go test's stdin is not a terminal.
	_, err := readPrivateKey(key, passphraseSource{})
	if err == nil || !strings.Contains(err.Error(), "--key-passphrase-file or "+passphraseEnv) {
		t.Fatalf("no passphrase anywhere: %v", err)
	}
}
