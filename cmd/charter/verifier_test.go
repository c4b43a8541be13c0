package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/cose/cosetest"
	gocose "github.com/veraison/go-cose"
)

var verifierInterop = filepath.Join("..", "..", "..", "shared", "testdata", "interop")

func runVerifierCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

type verifierHashes []tlog.Hash

func (h verifierHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = h[x]
	}
	return out, nil
}

// verifierFixture signs a statement with `charter keygen` and `charter sign`,
// registers it at index 4 of a 7-leaf tree with a service key, and writes
// the transparent statement, a bare receipt, and the service keys in each
// format to a temporary directory. The receipt binds its tree size, as
// charterd's do; unboundTS carries the same proof under a head that does
// not (other services, Charter before the signed size), and rewrittenTS
// the bound receipt with its size changed to 8 (index 4 has the same proof
// shape in trees of 7 and 8 leaves).
type verifierFixture struct {
	dir                            string
	ts, receipt, payload           string
	unboundTS, rewrittenTS         string
	keySet, jwks, pemKeys, otherKS string
	did                            string
	receiptBytes, statementBytes   []byte
}

// rewriteInclusion replaces the inclusion proof's tree size and leaf
// index, as anyone holding the receipt can (cosetest.RewriteProof).
func rewriteInclusion(t *testing.T, receipt []byte, size, index uint64) []byte {
	t.Helper()
	r, err := cosetest.RewriteProof(receipt, cosetest.SetProof(size, index))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newVerifierFixture(t *testing.T) *verifierFixture {
	t.Helper()
	dir := t.TempDir()
	f := &verifierFixture{dir: dir}
	path := func(name string) string { return filepath.Join(dir, name) }
	code, stdout, stderr := runVerifierCLI("keygen", "--out", path("keys"))
	if code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	f.did = strings.TrimSpace(stdout)
	f.payload = path("sbom.json")
	if err := os.WriteFile(f.payload, []byte(`{"sbom": "widget"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stPath := path("s.cose")
	if code, _, stderr := runVerifierCLI("sign", "--key", path("keys/key.pem"), "--x5chain", path("keys/chain.pem"),
		"--subject", "pkg:example/widget@1", "--content-type", "application/json", "--out", stPath, f.payload); code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	st, err := os.ReadFile(stPath)
	if err != nil {
		t.Fatal(err)
	}
	f.statementBytes = st
	parsed, err := cose.ParseStatement(st, cose.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entry := parsed.LeafEntry()

	var stored verifierHashes
	const n, index = 7, 4
	for i := range n {
		e := sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
		if i == index {
			e = entry
		}
		hs, err := tlog.StoredHashes(int64(i), e[:], stored)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	root, _ := tlog.TreeHash(n, stored)
	proof, _ := tlog.ProveRecord(n, index, stored)
	var p [][]byte
	for i := range proof {
		p = append(p, proof[i][:])
	}
	svc, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := cose.NewKey(&svc.PublicKey)
	claims := cose.ReceiptClaims{Issuer: "charter.test", Subject: "charter.checkpoint.v1", IssuedAt: 1766437888}
	receipt := func(claims cose.ReceiptClaims) []byte {
		protected, sig, err := cose.SignTreeHead(rand.Reader, svc, gocose.AlgorithmES256, key.Kid, claims, root[:])
		if err != nil {
			t.Fatal(err)
		}
		r, err := cose.NewInclusionReceipt(protected, sig, n, index, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	unbound := receipt(claims)
	claims.TreeSize = n
	f.receiptBytes = receipt(claims)
	write := func(name string, b []byte) string {
		if err := os.WriteFile(path(name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path(name)
	}
	attach := func(name string, r []byte) string {
		ts, err := cose.AttachReceipts(st, r)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, ts)
	}
	f.ts = attach("ts.cose", f.receiptBytes)
	f.unboundTS = attach("unbound.cose", unbound)
	f.rewrittenTS = attach("rewritten.cose", rewriteInclusion(t, f.receiptBytes, 8, 4))
	f.receipt = write("receipt.cose", f.receiptBytes)
	ks, _ := cose.MarshalKeySet([]cose.Key{key})
	f.keySet = write("keys.cbor", ks)
	js, _ := cose.MarshalJWKS([]cose.Key{key})
	f.jwks = write("jwks.json", js)
	der, _ := x509.MarshalPKIXPublicKey(&svc.PublicKey)
	f.pemKeys = write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := cose.NewKey(&other.PublicKey)
	oks, _ := cose.MarshalKeySet([]cose.Key{otherKey})
	f.otherKS = write("other.cbor", oks)
	return f
}

func TestVerifyCommand(t *testing.T) {
	f := newVerifierFixture(t)
	for _, keys := range []string{f.keySet, f.jwks, f.pemKeys} {
		code, stdout, stderr := runVerifierCLI("verify", "--service-keys", keys, "--payload", f.payload, f.ts)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", keys, code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if len(lines) != 3 ||
			lines[0] != "ok   statement signature (issuer "+f.did+")" ||
			!strings.HasPrefix(lines[1], "ok   receipt 1 (kid ") || !strings.HasSuffix(lines[1], "issuer charter.test, leaf index 4 of 7 (2025-12-22T21:11:28Z))") ||
			!strings.HasPrefix(lines[2], "ok   payload (") {
			t.Fatalf("%s: output\n%s", keys, stdout)
		}
	}
	// Flags after the file work too.
	if code, _, stderr := runVerifierCLI("verify", f.ts, "--service-keys", f.keySet); code != 0 {
		t.Fatalf("flags after file: %s", stderr)
	}

	wrongPayload := filepath.Join(f.dir, "other.json")
	os.WriteFile(wrongPayload, []byte(`{"sbom": "gadget"}`), 0o644)
	tampered := bytes.Clone(f.receiptBytes)
	tampered[len(tampered)-1] ^= 1
	tts, _ := cose.AttachReceipts(f.statementBytes, tampered)
	tamperedPath := filepath.Join(f.dir, "tampered.cose")
	os.WriteFile(tamperedPath, tts, 0o644)
	stPath := filepath.Join(f.dir, "s.cose")

	for _, c := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string // lines that must appear
		stderrIn string
	}{
		{"wrong payload", []string{"--service-keys", f.keySet, "--payload", wrongPayload, f.ts}, 1,
			[]string{"ok   statement signature", "FAIL payload: "}, "payload failed"},
		{"unknown service key", []string{"--service-keys", f.otherKS, f.ts}, 1,
			[]string{"ok   statement signature", "FAIL receipt 1: receipt signed by an unknown key"}, "receipt 1 failed"},
		{"tampered receipt", []string{"--service-keys", f.keySet, tamperedPath}, 1,
			[]string{"FAIL receipt 1: receipt signature does not verify: inclusion proof does not match the signed root"}, "receipt 1 failed"},
		{"rewritten tree size", []string{"--service-keys", f.keySet, f.rewrittenTS}, 1,
			[]string{"ok   statement signature", "FAIL receipt 1: receipt proof is not for the signed tree size: the inclusion proof is for tree size 8, but the service signed tree size 7"}, "receipt 1 failed"},
		{"unbound receipt", []string{"--service-keys", f.keySet, f.unboundTS}, 0,
			[]string{"ok   statement signature", "issuer charter.test, leaf index 4 of 7 (not signed by the service) (2025-12-22T21:11:28Z))"}, ""},
		{"no receipts", []string{"--service-keys", f.keySet, stPath}, 1,
			[]string{"ok   statement signature", "FAIL receipts: "}, "receipts failed"},
		{"chain time checked", []string{"--service-keys", f.keySet, "--check-chain-time", f.ts}, 0,
			[]string{"ok   statement signature", "ok   receipt 1"}, ""},
		{"no keys flag", []string{f.ts}, 2, nil, "--service-keys is required"},
		{"two files", []string{"--service-keys", f.keySet, f.ts, f.ts}, 2, nil, "want one"},
		{"keys not keys", []string{"--service-keys", f.payload, f.ts}, 1, nil, "--service-keys"},
	} {
		code, stdout, stderr := runVerifierCLI(append([]string{"verify"}, c.args...)...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", c.name, code, c.code, stdout, stderr)
			continue
		}
		for _, l := range c.stdout {
			if !strings.Contains(stdout, l) {
				t.Errorf("%s: stdout lacks %q:\n%s", c.name, l, stdout)
			}
		}
		if !strings.Contains(stderr, c.stderrIn) {
			t.Errorf("%s: stderr %q lacks %q", c.name, stderr, c.stderrIn)
		}
	}
}

func TestVerifyCommandCCFInterop(t *testing.T) {
	dir := filepath.Join(verifierInterop, "scitt-ccf-ledger", "test", "transparent_statements")
	code, stdout, stderr := runVerifierCLI("verify", "--service-keys", filepath.Join(dir, "esrp-cts-db.json"), filepath.Join(dir, "uvm_0.2.10.cose"))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	want := "ok   statement signature (issuer did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2)\n" +
		"ok   receipt 1 (kid da7694f16def5a056ca96afb21e89a9450e4cc875e2de351da76d99544a3e849, issuer esrp-cts-db.confidential-ledger.azure.com, registered at 458.12440, signed at 458.12441 (2025-12-22T21:11:28Z))\n"
	if stdout != want {
		t.Errorf("stdout\n%s\nwant\n%s", stdout, want)
	}
	// The chain expired in 2026-05: with --check-chain-time the statement fails.
	code, stdout, _ = runVerifierCLI("verify", "--service-keys", filepath.Join(dir, "esrp-cts-db.json"), "--check-chain-time", filepath.Join(dir, "uvm_0.2.10.cose"))
	if code != 1 || !strings.Contains(stdout, "FAIL statement signature") || !strings.Contains(stdout, "ok   receipt 1") {
		t.Errorf("--check-chain-time: exit %d\n%s", code, stdout)
	}
}

func TestReceiptShow(t *testing.T) {
	f := newVerifierFixture(t)
	code, stdout, stderr := runVerifierCLI("receipt", "show", f.ts)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"statement\n", "  alg              ES256\n", "  issuer           " + f.did + "\n",
		"  subject          pkg:example/widget@1\n", "  content type     application/json\n",
		"  payload          18 bytes\n", "receipt 1\n", "  vds              1 (RFC9162_SHA256)\n",
		"  issuer           charter.test\n", "  subject          charter.checkpoint.v1\n",
		"  issued at        2025-12-22T21:11:28Z\n", "  signed size      7\n", "  inclusion 1      tree size 7, leaf index 4\n", "    path[2] ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("receipt show lacks %q:\n%s", want, stdout)
		}
	}
	// A receipt whose head does not bind the size says so.
	code, stdout, _ = runVerifierCLI("receipt", "show", f.unboundTS)
	if code != 0 || !strings.Contains(stdout, "  signed size      none: the tree sizes and leaf indices below are not signed\n") {
		t.Errorf("unbound receipt: exit %d\n%s", code, stdout)
	}
	// A bare receipt.
	code, stdout, _ = runVerifierCLI("receipt", "show", f.receipt)
	if code != 0 || !strings.HasPrefix(stdout, "receipt\n") || strings.Contains(stdout, "statement") {
		t.Errorf("bare receipt: exit %d\n%s", code, stdout)
	}

	dir := filepath.Join(verifierInterop, "scitt-ccf-ledger", "test", "transparent_statements")
	code, stdout, _ = runVerifierCLI("receipt", "show", filepath.Join(dir, "uvm_0.2.10.cose"))
	for _, want := range []string{
		"  alg              PS384\n", "  subject          ContainerPlat-AMD-UVM\n", "  payload          48 bytes\n",
		"  content type     application/octet-stream\n", "SHA-384 digest",
		"  vds              2 (CCF_LEDGER_SHA256)\n", "  ccf txid         458.12441",
		"registered at 458.12440", "  issued at        2025-12-22T21:11:28Z\n",
		"    claims digest    a60138fb1591fe6c433b41128b0349cf3636bce74fc8c2e7140bc13b74612649\n",
		"    root             9a9b439497b18eed7d5a1f3177c3206cb221e12e46e6f66bac935c62053b0466\n",
		"    path[4] left  ",
	} {
		if strings.Contains(stdout, "signed size") {
			t.Errorf("uvm: a CCF receipt has no signed size line:\n%s", stdout)
		}
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("uvm: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}
	// A statement without receipts, and a file that is not COSE, fail.
	if code, _, stderr := runVerifierCLI("receipt", "show", filepath.Join(f.dir, "s.cose")); code != 1 || !strings.Contains(stderr, "no receipts") {
		t.Errorf("plain statement: exit %d %s", code, stderr)
	}
	if code, _, _ := runVerifierCLI("receipt", "show", f.payload); code != 1 {
		t.Errorf("JSON file: exit %d", code)
	}
	// A legacy (pre-COSE-Receipts) CCF receipt is reported, not hidden.
	legacy := filepath.Join(verifierInterop, "scitt-ccf-ledger", "test", "payloads", "cts-hashv-cwtclaims-b64url.cose")
	code, stdout, stderr = runVerifierCLI("receipt", "show", legacy)
	if code != 1 || !strings.Contains(stdout, "cannot parse") || !strings.Contains(stderr, "1 of 1 receipts") {
		t.Errorf("legacy receipt: exit %d\n%s%s", code, stdout, stderr)
	}
}
