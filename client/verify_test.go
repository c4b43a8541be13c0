package client_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/cose/cosetest"
	gocose "github.com/veraison/go-cose"
)

var interopDir = filepath.Join("..", "..", "shared", "testdata", "interop")

// fixture is a statement registered at index 3 of a 6-leaf log. receipt
// binds the tree size, as charterd's do; unbound is the same proof under a
// head that does not (other services, Charter before the signed size).
type fixture struct {
	statement []byte
	payload   []byte
	issuerPub crypto.PublicKey
	svcPriv   *ecdsa.PrivateKey
	svcKey    cose.Key
	receipt   []byte
	unbound   []byte
}

type hashes []tlog.Hash

func (h hashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = h[x]
	}
	return out, nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	issuer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	payload := []byte(`{"sbom":"widget 1.0"}`)
	st, err := cose.SignStatement(rand.Reader, issuer, cose.SignOptions{
		Issuer: "did:example:publisher", Subject: "pkg:example/widget@1.0",
		ContentType: "application/json", Kid: []byte("publisher-key"),
	}, payload)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := cose.ParseStatement(st, cose.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entry := parsed.LeafEntry()

	var stored hashes
	const n, index = 6, 3
	for i := range n {
		e := sha256.Sum256(fmt.Appendf(nil, "other %d", i))
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
	proof, err := tlog.ProveRecord(n, index, stored)
	if err != nil {
		t.Fatal(err)
	}
	path := make([][]byte, len(proof))
	for i := range proof {
		path[i] = proof[i][:]
	}
	svc, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	svcKey, _ := cose.NewKey(&svc.PublicKey)
	claims := cose.ReceiptClaims{Issuer: "charter.test", Subject: "charter.checkpoint.v1", IssuedAt: 1766437888}
	receipt := func(claims cose.ReceiptClaims) []byte {
		protected, sig, err := cose.SignTreeHead(rand.Reader, svc, gocose.AlgorithmES256, svcKey.Kid, claims, root[:])
		if err != nil {
			t.Fatal(err)
		}
		r, err := cose.NewInclusionReceipt(protected, sig, n, index, path)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	unbound := receipt(claims)
	claims.TreeSize = n
	return &fixture{statement: st, payload: payload, issuerPub: &issuer.PublicKey, svcPriv: svc, svcKey: svcKey, receipt: receipt(claims), unbound: unbound}
}

// rewriteProof replaces the inclusion proof's tree size and leaf index, as
// anyone holding the receipt can (cosetest.RewriteProof).
func rewriteProof(t *testing.T, receipt []byte, size, index uint64) []byte {
	t.Helper()
	r, err := cosetest.RewriteProof(receipt, cosetest.SetProof(size, index))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) opts() client.VerifyOptions {
	return client.VerifyOptions{
		ServiceKeys: cose.KeySet{f.svcKey},
		StatementOptions: cose.VerifyOptions{IssuerKey: func(iss string, kid []byte) (crypto.PublicKey, error) {
			if iss == "did:example:publisher" && string(kid) == "publisher-key" {
				return f.issuerPub, nil
			}
			return nil, errors.New("unknown issuer")
		}},
	}
}

func checkNames(rep *client.Report) string {
	var s []string
	for _, c := range rep.Checks {
		mark := "ok"
		if !c.OK {
			mark = "FAIL"
		}
		s = append(s, mark+" "+c.Name)
	}
	return strings.Join(s, "; ")
}

func TestVerifyTransparentStatement(t *testing.T) {
	f := newFixture(t)
	ts, err := cose.AttachReceipts(f.statement, f.receipt)
	if err != nil {
		t.Fatal(err)
	}
	opts := f.opts()
	opts.Payload = f.payload
	rep, err := client.VerifyTransparentStatement(ts, opts)
	if err != nil {
		t.Fatalf("%v (%s)", err, checkNames(rep))
	}
	if got := checkNames(rep); got != "ok statement signature; ok receipt 1; ok payload" {
		t.Fatalf("checks: %s", got)
	}
	if rep.Issuer != "did:example:publisher" || rep.Subject != "pkg:example/widget@1.0" {
		t.Errorf("issuer %q subject %q", rep.Issuer, rep.Subject)
	}
	if d := rep.Checks[1].Detail; !strings.Contains(d, "leaf index 3 of 6 (2025-12-22T21:11:28Z)") || !strings.Contains(d, "issuer charter.test") ||
		!strings.Contains(d, string(f.svcKey.Kid)) || strings.Contains(d, client.NotSignedByService) {
		t.Errorf("receipt detail %q", d)
	}
	if vr := rep.Checks[1].Receipt; vr == nil || !vr.SizeBound || vr.TreeSize != 6 || vr.LeafIndex != 3 {
		t.Errorf("receipt check: %+v", vr)
	}

	// A receipt that does not bind its size verifies, and says its index
	// and size are the sender's word.
	unboundTS, _ := cose.AttachReceipts(f.statement, f.unbound)
	rep, err = client.VerifyTransparentStatement(unboundTS, opts)
	if err != nil {
		t.Fatalf("unbound receipt: %v (%s)", err, checkNames(rep))
	}
	if d := rep.Checks[1].Detail; !strings.Contains(d, "leaf index 3 of 6 "+client.NotSignedByService) {
		t.Errorf("unbound receipt detail %q", d)
	}
	if vr := rep.Checks[1].Receipt; vr == nil || vr.SizeBound {
		t.Errorf("unbound receipt check: %+v", vr)
	}
	// Index 3 has the same proof shape in trees of 5 and 6 leaves: the
	// rewritten unbound receipt verifies (as 3 of 5, unsigned); the bound
	// one is refused, naming both sizes.
	rep, err = client.VerifyTransparentStatement(must(cose.AttachReceipts(f.statement, rewriteProof(t, f.unbound, 5, 3))), opts)
	if err != nil || !strings.Contains(rep.Checks[1].Detail, "leaf index 3 of 5 "+client.NotSignedByService) {
		t.Errorf("rewritten unbound receipt: %v (%+v)", err, rep.Checks)
	}
	rep, err = client.VerifyTransparentStatement(must(cose.AttachReceipts(f.statement, rewriteProof(t, f.receipt, 5, 3))), opts)
	if !errors.Is(err, cose.ErrTreeSizeNotSigned) || checkNames(rep) != "ok statement signature; FAIL receipt 1; ok payload" ||
		!strings.Contains(rep.Checks[1].Detail, "tree size 5, but the service signed tree size 6") || rep.Checks[1].Receipt != nil {
		t.Errorf("rewritten bound receipt: %v (%+v)", err, rep.Checks)
	}

	// Each failure is reported under its own check, and the error names it.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := cose.NewKey(&other.PublicKey)
	tampered := bytes.Clone(f.receipt)
	tampered[len(tampered)-1] ^= 1 // last signature byte
	twice, _ := cose.AttachReceipts(ts, tampered)
	for _, c := range []struct {
		name  string
		ts    []byte
		edit  func(*client.VerifyOptions)
		want  string
		isErr error
	}{
		{"wrong payload", ts, func(o *client.VerifyOptions) { o.Payload = []byte("other") }, "ok statement signature; ok receipt 1; FAIL payload", cose.ErrPayloadMismatch},
		{"unknown service key", ts, func(o *client.VerifyOptions) { o.ServiceKeys = cose.KeySet{otherKey} }, "ok statement signature; FAIL receipt 1", cose.ErrUnknownKey},
		{"impostor service key", ts, func(o *client.VerifyOptions) {
			k := otherKey
			k.Kid = f.svcKey.Kid
			o.ServiceKeys = cose.KeySet{k}
		}, "ok statement signature; FAIL receipt 1", cose.ErrReceiptSignature},
		{"unknown issuer", ts, func(o *client.VerifyOptions) { o.StatementOptions.IssuerKey = nil }, "FAIL statement signature; ok receipt 1", cose.ErrUnknownIssuerKey},
		{"no receipts", f.statement, nil, "ok statement signature; FAIL receipts", client.ErrNoReceipts},
		{"second receipt tampered", twice, nil, "ok statement signature; ok receipt 1; FAIL receipt 2", cose.ErrReceiptSignature},
		{"not COSE", []byte("hello"), nil, "FAIL transparent statement", cose.ErrBadTransparentStatement},
	} {
		o := f.opts()
		if c.edit != nil {
			c.edit(&o)
		}
		rep, err := client.VerifyTransparentStatement(c.ts, o)
		if got := checkNames(rep); got != c.want {
			t.Errorf("%s: checks %q, want %q", c.name, got, c.want)
		}
		if err == nil || !errors.Is(err, c.isErr) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.isErr)
			continue
		}
		for _, fc := range rep.Failed() {
			if !strings.Contains(err.Error(), fc.Name+":") {
				t.Errorf("%s: error %q does not name %q", c.name, err, fc.Name)
			}
		}
	}

	// The receipt is for this statement only: a different statement with
	// the same receipt fails it.
	g := newFixture(t)
	swapped, _ := cose.AttachReceipts(g.statement, f.receipt)
	o := g.opts()
	o.ServiceKeys = cose.KeySet{f.svcKey}
	if _, err := client.VerifyTransparentStatement(swapped, o); !errors.Is(err, cose.ErrReceiptSignature) {
		t.Errorf("receipt of another statement: %v", err)
	}
}

// TestVerifyCCFInterop verifies scitt-ccf-ledger's uvm_0.2.10.cose with its
// trust store: PS384 did:x509 statement (chain expired, so chain times are
// skipped, as `charter verify` does) and one CCF receipt.
func TestVerifyCCFInterop(t *testing.T) {
	dir := filepath.Join(interopDir, "scitt-ccf-ledger", "test", "transparent_statements")
	ts, err := os.ReadFile(filepath.Join(dir, "uvm_0.2.10.cose"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := os.ReadFile(filepath.Join(dir, "esrp-cts-db.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := client.ParseServiceKeys(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("%d keys, want 2", len(keys))
	}
	rep, err := client.VerifyTransparentStatement(ts, client.VerifyOptions{
		ServiceKeys:      keys,
		StatementOptions: cose.VerifyOptions{SkipChainTime: true},
	})
	if err != nil {
		t.Fatalf("%v (%s)", err, checkNames(rep))
	}
	if got := checkNames(rep); got != "ok statement signature; ok receipt 1" {
		t.Fatalf("checks %s", got)
	}
	want := "kid da7694f16def5a056ca96afb21e89a9450e4cc875e2de351da76d99544a3e849, issuer esrp-cts-db.confidential-ledger.azure.com, registered at 458.12440, signed at 458.12441 (2025-12-22T21:11:28Z)"
	if rep.Checks[1].Detail != want {
		t.Errorf("receipt detail\n got %s\nwant %s", rep.Checks[1].Detail, want)
	}
	if rep.Subject != "ContainerPlat-AMD-UVM" || !strings.HasPrefix(rep.Issuer, "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:") {
		t.Errorf("issuer %q subject %q", rep.Issuer, rep.Subject)
	}
	// The chain has expired: without SkipChainTime the statement check fails
	// but the receipt still verifies.
	rep, err = client.VerifyTransparentStatement(ts, client.VerifyOptions{ServiceKeys: keys})
	if err == nil || checkNames(rep) != "FAIL statement signature; ok receipt 1" {
		t.Errorf("expired chain: %v (%s)", err, checkNames(rep))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseServiceKeys(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	k, _ := cose.NewKey(&priv.PublicKey)
	set, _ := cose.MarshalKeySet([]cose.Key{k})
	one, _ := cose.MarshalCOSEKey(k)
	jwks, _ := cose.MarshalJWKS([]cose.Key{k})
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for name, b := range map[string][]byte{"COSE_KeySet": set, "COSE_Key": one, "JWKS": append([]byte("\n "), jwks...), "PEM": pemKey} {
		ks, err := client.ParseServiceKeys(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(ks) != 1 || !bytes.Equal(ks[0].Kid, k.Kid) || ks[0].Alg != gocose.AlgorithmES384 || !priv.PublicKey.Equal(ks[0].Public) {
			t.Errorf("%s: %+v", name, ks)
		}
	}
	for name, b := range map[string][]byte{
		"empty": nil, "text": []byte("hello"), "JSON other": []byte(`{"x":1}`), "bad JSON": []byte(`{"keys":`),
		"PEM private": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}),
		"CBOR int":    {0x01},
	} {
		if _, err := client.ParseServiceKeys(b); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
