package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/charterlog/charter/internal/devpki"
)

func init() {
	register(command{
		name:    "keygen",
		summary: "make a publisher key, a certificate chain and its did:x509 issuer",
		run:     runKeygen,
	})
}

const keygenSynopsis = "--out DIR [--alg ES256|ES384|EdDSA] [--subject CN]"

// runKeygen writes DIR/key.pem (PKCS#8, mode 0600), DIR/chain.pem (a leaf
// with the subject CN and EKU codeSigning, then the self-signed CA that
// issued it) and DIR/issuer.txt, and prints the did:x509 issuer (CA
// fingerprint, policy subject:CN) on stdout. The CA key is not kept: the
// chain is for one publisher key.
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", keygenSynopsis, stderr)
	out := fs.String("out", "", "directory to write key.pem, chain.pem and issuer.txt to (created if missing)")
	alg := fs.String("alg", "ES256", "key algorithm: ES256, ES384 or EdDSA")
	subject := fs.String("subject", "charter publisher", "subject common name of the leaf certificate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; usage: charter keygen %s", fs.Arg(0), keygenSynopsis)
	}
	if *out == "" {
		return usageError("--out is required; usage: charter keygen %s", keygenSynopsis)
	}
	if *subject == "" {
		return usageError("--subject must not be empty")
	}
	newKey, ok := keygenAlgs[*alg]
	if !ok {
		return usageError("--alg %q: use ES256, ES384 or EdDSA", *alg)
	}
	keyPath := filepath.Join(*out, "key.pem")
	if _, err := os.Stat(keyPath); err == nil {
		return fmt.Errorf("--out: %s already exists; remove it or choose another directory (keygen never overwrites a key)", keyPath)
	}

	caKey, err := newKey()
	if err != nil {
		return err
	}
	leafKey, err := newKey()
	if err != nil {
		return err
	}
	// The CA lasts ten years, the leaf two, both from an hour ago.
	const year = 365 * 24 * time.Hour
	pub, err := devpki.New(*subject, leafKey, caKey, time.Now().Add(-time.Hour), 10*year, 2*year)
	if err != nil {
		return err
	}
	chain, did := pub.Certs, pub.Issuer
	pkcs8, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return fmt.Errorf("encoding the key: %w", err)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	// O_EXCL: never replace a key that appeared since the check above.
	if err := writeFileExcl(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	var chainPEM []byte
	for _, c := range chain {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(filepath.Join(*out, "chain.pem"), chainPEM, 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := os.WriteFile(filepath.Join(*out, "issuer.txt"), []byte(did+"\n"), 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s, %s and %s\n", keyPath, filepath.Join(*out, "chain.pem"), filepath.Join(*out, "issuer.txt"))
	fmt.Fprintln(stdout, did)
	return nil
}

var keygenAlgs = map[string]func() (crypto.Signer, error){
	"ES256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	"ES384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
	"EdDSA": func() (crypto.Signer, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	},
}

func writeFileExcl(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var errNoPEM = errors.New("no PEM data")
