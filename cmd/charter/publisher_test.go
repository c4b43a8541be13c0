package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeygenSignVerify(t *testing.T) {
	for _, tc := range []struct {
		alg     string
		subject string
		want    gocose.Algorithm
	}{
		{"", "", gocose.AlgorithmES256},
		{"ES384", "build: bot #1", gocose.AlgorithmES384},
		{"EdDSA", "ed publisher", gocose.AlgorithmEdDSA},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			args := []string{"keygen", "--out", dir}
			if tc.alg != "" {
				args = append(args, "--alg", tc.alg)
			}
			cn := "charter publisher"
			if tc.subject != "" {
				args = append(args, "--subject", tc.subject)
				cn = tc.subject
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("keygen exit %d: %s", code, stderr)
			}
			did := strings.TrimSuffix(stdout, "\n")
			if strings.Contains(did, "\n") || !strings.HasPrefix(did, "did:x509:0:sha256:") {
				t.Fatalf("keygen stdout %q is not one did:x509 line", stdout)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "issuer.txt")); string(b) != stdout {
				t.Fatalf("issuer.txt %q differs from stdout %q", b, stdout)
			}
			fi, err := os.Stat(filepath.Join(dir, "key.pem"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key.pem: %v %v", err, fi.Mode())
			}
			chain := readChain(t, filepath.Join(dir, "chain.pem"))
			if len(chain) != 2 || chain[0].Subject.CommonName != cn || chain[0].ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning ||
				!chain[1].IsCA || chain[0].CheckSignatureFrom(chain[1]) != nil {
				t.Fatalf("chain: %v", chain)
			}
			d, err := cose.ParseDIDX509(did)
			if err != nil {
				t.Fatal(err)
			}
			fp := sha256.Sum256(chain[1].Raw)
			if !bytes.Equal(d.Fingerprint, fp[:]) || d.Policies[0].Name != "subject" || d.Policies[0].Values[1] != cn {
				t.Fatalf("did %+v", d)
			}
			// keygen never overwrites a key.
			if code, _, stderr := runCLI(t, args...); code != 1 || !strings.Contains(stderr, "already exists") {
				t.Fatalf("second keygen: exit %d, %s", code, stderr)
			}

			payload := filepath.Join(t.TempDir(), "sbom.json")
			content := []byte(`{"sbom": true}`)
			if err := os.WriteFile(payload, content, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, hashEnv := range []bool{false, true} {
				out := filepath.Join(t.TempDir(), "s.cose")
				args := []string{"sign", "--key", filepath.Join(dir, "key.pem"), "--x5chain", filepath.Join(dir, "chain.pem"),
					"--subject", "pkg:npm/x@1", "--content-type", "application/json", "--out", out}
				if hashEnv {
					args = append(args, "--hash-envelope", "--payload-location", "https://example.com/sbom.json")
				}
				args = append(args, payload)
				if code, _, stderr := runCLI(t, args...); code != 0 {
					t.Fatalf("sign exit %d: %s", code, stderr)
				}
				b, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				s, err := cose.ParseStatement(b, cose.ParseOptions{})
				if err != nil {
					t.Fatal(err)
				}
				iss, err := s.Verify(cose.VerifyOptions{TrustedCAs: [][32]byte{fp}})
				if err != nil {
					t.Fatal(err)
				}
				if iss.DID != did || s.Alg != tc.want || s.CWT.Subject != "pkg:npm/x@1" || s.CWT.IssuedAt == nil {
					t.Fatalf("statement: iss %q alg %v sub %q", iss.DID, s.Alg, s.CWT.Subject)
				}
				if err := s.VerifyPayload(content); err != nil {
					t.Fatal(err)
				}
				if hashEnv != (s.HashEnvelope != nil) {
					t.Fatalf("hash envelope: %+v", s.HashEnvelope)
				}
				if hashEnv && (s.HashEnvelope.PreimageContentType != "application/json" || s.HashEnvelope.PayloadLocation != "https://example.com/sbom.json") {
					t.Fatalf("hash envelope: %+v", s.HashEnvelope)
				}
			}
		})
	}
}

func readChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestSignIssuerAndFlagOrder(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "keygen", "--out", dir); code != 0 {
		t.Fatal(stderr)
	}
	payload := filepath.Join(dir, "p.txt")
	os.WriteFile(payload, []byte("hello"), 0o644)
	out := filepath.Join(dir, "s.cose")
	// PAYLOAD before some flags, and an explicit --issuer using the eku policy.
	chain := readChain(t, filepath.Join(dir, "chain.pem"))
	did, err := cose.NewDIDX509(chain, 1, "eku:1.3.6.1.5.5.7.3.3")
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "sign", "--key", filepath.Join(dir, "key.pem"), payload, "--x5chain", filepath.Join(dir, "chain.pem"),
		"--subject", "s", "--content-type", "text/plain", "--issuer", did, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(out)
	s, err := cose.ParseStatement(b, cose.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(cose.VerifyOptions{}); err != nil || s.CWT.Issuer != did {
		t.Fatalf("verify: %v, iss %q", err, s.CWT.Issuer)
	}
}

func TestPublisherErrors(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "keygen", "--out", dir); code != 0 {
		t.Fatal(stderr)
	}
	other := t.TempDir()
	if code, _, stderr := runCLI(t, "keygen", "--out", other, "--alg", "EdDSA"); code != 0 {
		t.Fatal(stderr)
	}
	payload := filepath.Join(dir, "p.txt")
	os.WriteFile(payload, []byte("hello"), 0o644)
	key, chain := filepath.Join(dir, "key.pem"), filepath.Join(dir, "chain.pem")
	out := filepath.Join(dir, "s.cose")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	base := func(extra ...string) []string {
		return append([]string{"sign", "--subject", "s", "--content-type", "text/plain", "--out", out}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"keygen no --out", []string{"keygen"}, 2, "--out is required"},
		{"keygen bad alg", []string{"keygen", "--out", t.TempDir(), "--alg", "RS256"}, 2, "--alg"},
		{"keygen unknown flag", []string{"keygen", "--bogus"}, 2, "bogus"},
		{"sign no flags", []string{"sign"}, 2, "missing [--key --x5chain --subject --content-type --out]"},
		{"sign no payload", base("--key", key, "--x5chain", chain), 2, "PAYLOAD"},
		{"sign two payloads", base("--key", key, "--x5chain", chain, payload, payload), 2, "PAYLOAD"},
		{"location without hash envelope", base("--key", key, "--x5chain", chain, "--payload-location", "https://x", payload), 2, "--hash-envelope"},
		{"missing key file", base("--key", filepath.Join(dir, "x.pem"), "--x5chain", chain, payload), 1, "--key: open " + filepath.Join(dir, "x.pem") + ": no such file"},
		{"garbage key file", base("--key", garbage, "--x5chain", chain, payload), 1, "--key: " + garbage + ": no PEM private key"},
		{"garbage chain file", base("--key", key, "--x5chain", garbage, payload), 1, "--x5chain: " + garbage},
		{"key does not match chain", base("--key", filepath.Join(other, "key.pem"), "--x5chain", chain, payload), 1, "does not match the leaf certificate in --x5chain"},
		{"issuer does not match chain", base("--key", key, "--x5chain", chain, "--issuer", strings.TrimSpace(readFile(t, filepath.Join(other, "issuer.txt"))), payload), 1, "does not match --x5chain"},
		{"missing payload file", base("--key", key, "--x5chain", chain, filepath.Join(dir, "nope")), 1, "PAYLOAD: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d containing %q", code, stderr, tc.code, tc.msg)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a failed sign wrote %s", out)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
