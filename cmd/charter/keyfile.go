package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/youmark/pkcs8"
	"golang.org/x/term"
)

// Private key files, in every form CCF's tools and openssl write them:
//
//   - SEC 1 "EC PRIVATE KEY", alone or after an "EC PARAMETERS" block
//     naming its curve (keygenerator.sh runs `openssl ecparam -genkey`,
//     which writes both);
//   - PKCS #8 "PRIVATE KEY" (openssl genpkey, pkcs8 -topk8 -nocrypt);
//   - PKCS #8 "ENCRYPTED PRIVATE KEY" (PBES2 with PBKDF2 or scrypt and
//     AES or 3DES, as openssl genpkey -aes256 or pkcs8 -topk8 -v2 write it),
//     decrypted with github.com/youmark/pkcs8;
//   - legacy encrypted PEM (an "EC PRIVATE KEY" or "RSA PRIVATE KEY" with
//     Proc-Type: 4,ENCRYPTED, as openssl ec -aes256 writes it);
//   - PKCS #1 "RSA PRIVATE KEY".
//
// Certificates and other blocks in the same file are skipped. An error
// names the form that could not be read.

// maxKeyFileBytes bounds a key file before it is parsed: an RSA 8192 key
// in PEM is under 7 KiB.
const maxKeyFileBytes = 64 << 10

// Bounds on the work an encrypted key's KDF may ask for. openssl's
// defaults are 2048 PBKDF2 iterations and scrypt N=16384, r=8, p=1; a
// file asking far more would keep the CLI busy for minutes or exhaust its
// memory (scrypt needs 128·N·r bytes).
const (
	maxPBKDF2Iterations = 10_000_000
	maxScryptN          = 1 << 20
	maxScryptMemory     = 256 << 20 // 128·N·r bytes
	maxScryptP          = 16
)

// passphraseEnv is the environment variable an encrypted key's passphrase
// may come from when no --key-passphrase-file is given.
const passphraseEnv = "CHARTER_KEY_PASSPHRASE"

// passphraseSource is where the passphrase of an encrypted key comes from:
// the file, else the environment variable, else a prompt on the terminal.
type passphraseSource struct {
	file string // --key-passphrase-file
}

// get returns the passphrase for the key at path.
func (p passphraseSource) get(path string) ([]byte, error) {
	if p.file != "" {
		b, err := readBounded(p.file, maxKeyFileBytes)
		if err != nil {
			return nil, fmt.Errorf("--key-passphrase-file: %w", err)
		}
		// The passphrase is the first line, as openssl's -passin file: reads it.
		line, _, _ := bytes.Cut(b, []byte("\n"))
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}
	if v, ok := os.LookupEnv(passphraseEnv); ok {
		return []byte(v), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("%s is an encrypted key: give its passphrase with --key-passphrase-file or %s (there is no terminal to ask on)", path, passphraseEnv)
	}
	fmt.Fprintf(os.Stderr, "passphrase for %s: ", path)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase for %s: %w", path, err)
	}
	return b, nil
}

// readBounded reads at most max bytes of path, and refuses a larger file.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a key file", path, max)
	}
	return b, nil
}

// readPrivateKey reads the key file at path (see the forms above).
func readPrivateKey(path string, pass passphraseSource) (crypto.Signer, error) {
	b, err := readBounded(path, maxKeyFileBytes)
	if err != nil {
		return nil, err
	}
	s, err := parsePrivateKey(b, func() ([]byte, error) { return pass.get(path) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// parsePrivateKey reads the one private key in data. passphrase is asked
// only for an encrypted key.
func parsePrivateKey(data []byte, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%d bytes is too large for a key file (at most %d)", len(data), maxKeyFileBytes)
	}
	var (
		params   *pem.Block // EC PARAMETERS
		keyBlock *pem.Block
		skipped  []string
	)
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "EC PARAMETERS":
			if params != nil {
				return nil, errors.New("two EC PARAMETERS blocks")
			}
			params = blk
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			if keyBlock != nil {
				return nil, fmt.Errorf("two private keys (%s and %s); a key file holds one", keyBlock.Type, blk.Type)
			}
			keyBlock = blk
		default:
			skipped = append(skipped, blk.Type)
		}
	}
	if keyBlock == nil {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("no PEM private key among the blocks (%s); want PRIVATE KEY (PKCS #8), EC PRIVATE KEY (SEC 1), ENCRYPTED PRIVATE KEY (PKCS #8) or RSA PRIVATE KEY (PKCS #1)", strings.Join(skipped, ", "))
		}
		return nil, errors.New("no PEM private key: the file holds no PEM block (want PKCS #8, SEC 1 with or without EC PARAMETERS, encrypted PKCS #8, or PKCS #1)")
	}
	if params != nil && keyBlock.Type != "EC PRIVATE KEY" {
		return nil, fmt.Errorf("an EC PARAMETERS block goes with an EC PRIVATE KEY, not a %s", keyBlock.Type)
	}
	k, form, err := parseKeyBlock(keyBlock, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", form, err)
	}
	if params != nil {
		if err := checkECParameters(params.Bytes, k); err != nil {
			return nil, fmt.Errorf("EC PARAMETERS before the SEC 1 key: %w", err)
		}
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T cannot sign", form, k)
	}
	return s, nil
}

// parseKeyBlock decodes one key block; form names it for errors.
func parseKeyBlock(blk *pem.Block, passphrase func() ([]byte, error)) (key any, form string, err error) {
	// RFC 1423 encryption is weak (an MD5-based KDF), and deprecated in
	// Go for that; but it is what openssl ec -aes256 writes, and reading
	// a key its owner encrypted that way exposes nothing new.
	if x509.IsEncryptedPEMBlock(blk) {
		form = "legacy encrypted PEM (" + blk.Type + ", Proc-Type 4,ENCRYPTED)"
		pw, err := passphrase()
		if err != nil {
			return nil, form, err
		}
		der, err := x509.DecryptPEMBlock(blk, pw)
		if err != nil {
			return nil, form, fmt.Errorf("cannot decrypt (wrong passphrase?): %v", err)
		}
		blk = &pem.Block{Type: blk.Type, Bytes: der}
	}
	switch blk.Type {
	case "EC PRIVATE KEY":
		if form == "" {
			form = "SEC 1 EC PRIVATE KEY"
		}
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		return k, form, err
	case "RSA PRIVATE KEY":
		if form == "" {
			form = "PKCS #1 RSA PRIVATE KEY"
		}
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		return k, form, err
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		return k, "PKCS #8 PRIVATE KEY", err
	case "ENCRYPTED PRIVATE KEY":
		form = "encrypted PKCS #8 (ENCRYPTED PRIVATE KEY)"
		if err := checkKDFBounds(blk.Bytes); err != nil {
			return nil, form, err
		}
		pw, err := passphrase()
		if err != nil {
			return nil, form, err
		}
		if len(pw) == 0 {
			// The library reads an empty passphrase as "not encrypted".
			return nil, form, errors.New("the passphrase is empty")
		}
		k, _, err := pkcs8.ParsePrivateKey(blk.Bytes, pw)
		if err != nil {
			return nil, form, fmt.Errorf("cannot decrypt (wrong passphrase, or a scheme other than PBES2 with PBKDF2 or scrypt and AES or 3DES): %v", err)
		}
		return k, form, nil
	}
	return nil, blk.Type, errors.New("not a private key block")
}

// checkECParameters checks that an EC PARAMETERS block names the curve of
// key: a named curve (explicit parameters are refused, as openssl's
// default named-curve output never holds them).
func checkECParameters(der []byte, key any) error {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(der, &oid); err != nil || len(rest) != 0 {
		return errors.New("not a named curve (explicit curve parameters are not read; write the key with -name and the default -param_enc named_curve)")
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("the key is a %T, not an EC key", key)
	}
	want, ok := curveOIDs[k.Curve]
	if !ok {
		return fmt.Errorf("the key's curve %s is not supported", k.Curve.Params().Name)
	}
	if !oid.Equal(want) {
		return fmt.Errorf("they name curve %v, the key is on %s (%v)", oid, k.Curve.Params().Name, want)
	}
	return nil
}

var curveOIDs = map[elliptic.Curve]asn1.ObjectIdentifier{
	elliptic.P256(): {1, 2, 840, 10045, 3, 1, 7},
	elliptic.P384(): {1, 3, 132, 0, 34},
	elliptic.P521(): {1, 3, 132, 0, 35},
}

// PKCS #5 v2.1 (RFC 8018) and RFC 7914 structures, read only to bound the
// KDF's cost before the library runs it.
var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
)

type encryptedKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF pkix.AlgorithmIdentifier
	Enc pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	Rest       asn1.RawValue `asn1:"optional"`
}

// checkKDFBounds refuses an encrypted PKCS #8 key whose key derivation
// would cost more than the bounds above, or that is not PBES2.
func checkKDFBounds(der []byte) error {
	var info encryptedKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return errors.New("not an EncryptedPrivateKeyInfo")
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return fmt.Errorf("encryption scheme %v is not PBES2 (openssl's -v2 and genpkey default); PKCS #5 v1.5 and PKCS #12 schemes are not read", info.Algorithm.Algorithm)
	}
	var p pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &p); err != nil {
		return errors.New("PBES2 parameters do not parse")
	}
	switch {
	case p.KDF.Algorithm.Equal(oidPBKDF2):
		var k pbkdf2Params
		if _, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &k); err != nil {
			return errors.New("PBKDF2 parameters do not parse")
		}
		if k.Iterations < 1 || k.Iterations > maxPBKDF2Iterations {
			return fmt.Errorf("PBKDF2 with %d iterations; at most %d are run", k.Iterations, maxPBKDF2Iterations)
		}
	case p.KDF.Algorithm.Equal(oidScrypt):
		var k struct {
			Salt    []byte
			N, R, P int
			Rest    asn1.RawValue `asn1:"optional"`
		}
		if _, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &k); err != nil {
			return errors.New("scrypt parameters do not parse")
		}
		if k.N < 2 || k.N > maxScryptN || k.R < 1 || k.P < 1 || k.P > maxScryptP || k.R > maxScryptMemory/(128*k.N) {
			return fmt.Errorf("scrypt with N=%d r=%d p=%d; at most N=%d, p=%d and %d MiB (128·N·r) are run", k.N, k.R, k.P, maxScryptN, maxScryptP, maxScryptMemory>>20)
		}
	default:
		return fmt.Errorf("key derivation %v is neither PBKDF2 nor scrypt", p.KDF.Algorithm)
	}
	return nil
}
