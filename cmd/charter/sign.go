package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/charterlog/charter/cose"
)

func init() {
	register(command{
		name:    "sign",
		summary: "sign a payload as a SCITT signed statement (COSE_Sign1 with x5chain)",
		run:     runSign,
	})
}

const signSynopsis = "--key KEY.pem --x5chain CHAIN.pem --subject SUB --content-type CT [--issuer DID] [--hash-envelope] [--payload-location URL] --out S.cose PAYLOAD"

// runSign signs the file PAYLOAD. The issuer defaults to the did:x509 of the
// chain (root fingerprint, policy subject:CN of the leaf); the algorithm
// follows the key. The statement is parsed and verified before it is
// written, so a statement this command writes is one the service can check.
func runSign(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sign", signSynopsis, stderr)
	keyPath := fs.String("key", "", "PEM private key of the leaf certificate: PKCS #8 (encrypted or not), SEC 1 EC (with or without EC PARAMETERS) or PKCS #1 RSA")
	var pass passphraseSource
	fs.StringVar(&pass.file, "key-passphrase-file", "", "file whose first line is the passphrase of an encrypted --key (else $"+passphraseEnv+", else a prompt)")
	chainPath := fs.String("x5chain", "", "PEM certificates, leaf first, ending with the root CA")
	subject := fs.String("subject", "", "CWT sub: what the statement is about")
	contentType := fs.String("content-type", "", "media type of PAYLOAD (with --hash-envelope, the preimage content type, label 259)")
	issuer := fs.String("issuer", "", "CWT iss; default: the did:x509 of --x5chain (root fingerprint and leaf subject CN)")
	hashEnvelope := fs.Bool("hash-envelope", false, "sign the SHA-256 of PAYLOAD instead of PAYLOAD (COSE Hash Envelope)")
	location := fs.String("payload-location", "", "where PAYLOAD can be fetched (label 260); needs --hash-envelope")
	out := fs.String("out", "", "file to write the signed statement to")
	// Flags may follow PAYLOAD.
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"--key", *keyPath}, {"--x5chain", *chainPath}, {"--subject", *subject}, {"--content-type", *contentType}, {"--out", *out}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return usageError("missing %v; usage: charter sign %s", missing, signSynopsis)
	}
	if len(pos) != 1 {
		return usageError("want one PAYLOAD file, have %d arguments; usage: charter sign %s", len(pos), signSynopsis)
	}
	if *location != "" && !*hashEnvelope {
		return usageError("--payload-location needs --hash-envelope")
	}

	key, err := readPrivateKey(*keyPath, pass)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	chain, err := loadChain(*chainPath)
	if err != nil {
		return fmt.Errorf("--x5chain: %w", err)
	}
	leaf := chain[0]
	if pk, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(key.Public()) {
		return fmt.Errorf("the key in --key does not match the leaf certificate in --x5chain (%q); use the key.pem made with that chain", leaf.Subject.CommonName)
	}
	if *issuer == "" {
		if len(chain) < 2 {
			return fmt.Errorf("--x5chain holds only the leaf; add its CA certificate, or pass --issuer")
		}
		if leaf.Subject.CommonName == "" {
			return fmt.Errorf("the leaf certificate in --x5chain has no subject CN; pass --issuer")
		}
		*issuer, err = cose.NewDIDX509(chain, len(chain)-1, "subject:CN:"+cose.PctEncode(leaf.Subject.CommonName))
		if err != nil {
			return fmt.Errorf("computing the issuer from --x5chain: %w", err)
		}
	}
	payload, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("PAYLOAD: %w", err)
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	stmt, err := cose.SignStatement(rand.Reader, key, cose.SignOptions{
		Issuer:          *issuer,
		Subject:         *subject,
		ContentType:     *contentType,
		X5Chain:         ders,
		HashEnvelope:    *hashEnvelope,
		PayloadLocation: *location,
		IssuedAt:        time.Now(),
	}, payload)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	s, err := cose.ParseStatement(stmt, cose.ParseOptions{})
	if err == nil {
		_, err = s.Verify(cose.VerifyOptions{})
	}
	if err != nil {
		if errors.Is(err, cose.ErrIssuerMismatch) {
			return fmt.Errorf("--issuer %q does not match --x5chain: %w", *issuer, err)
		}
		if errors.Is(err, cose.ErrBadChain) {
			return fmt.Errorf("--x5chain: %w", err)
		}
		return fmt.Errorf("the signed statement does not verify: %w", err)
	}
	if err := os.WriteFile(*out, stmt, 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s (%d bytes, %s, iss %s)\n", *out, len(stmt), s.Alg, *issuer)
	return nil
}

// loadChain reads PEM certificates, leaf first.
func loadChain(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %v", path, len(chain), err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s: %w: no CERTIFICATE blocks", path, errNoPEM)
	}
	return chain, nil
}
