package cose_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// signTestStatement signs a SCITT statement with go-cose directly, with an
// unprotected header holding unprotected.
func signTestStatement(t *testing.T, unprotected map[any]any) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := gocose.NewSigner(gocose.AlgorithmES256, priv)
	msg := gocose.NewSign1Message()
	msg.Headers.Protected = gocose.ProtectedHeader{
		gocose.HeaderLabelAlgorithm:   gocose.AlgorithmES256,
		gocose.HeaderLabelContentType: "application/json",
		gocose.HeaderLabelKeyID:       []byte("issuer-key"),
		int64(15):                     map[any]any{int64(1): "did:example:issuer", int64(2): "pkg:example/widget@1.0"},
	}
	msg.Headers.Unprotected = gocose.UnprotectedHeader{}
	for k, v := range unprotected {
		msg.Headers.Unprotected[k] = v
	}
	msg.Payload = []byte(`{"hello":"world"}`)
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	b, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return b, priv
}

// sign1Parts returns the raw protected, payload and signature elements.
func sign1Parts(t *testing.T, b []byte) (protected, uh, payload, sig cbor.RawMessage) {
	t.Helper()
	var tag cbor.RawTag
	if err := cbor.Unmarshal(b, &tag); err != nil || tag.Number != 18 {
		t.Fatalf("not tag 18: %v", err)
	}
	var parts []cbor.RawMessage
	if err := cbor.Unmarshal(tag.Content, &parts); err != nil || len(parts) != 4 {
		t.Fatalf("not an array of 4: %v", err)
	}
	return parts[0], parts[1], parts[2], parts[3]
}

func TestTransparentStatement(t *testing.T) {
	statement, priv := signTestStatement(t, map[any]any{int64(-70000): "kept"})
	svc := newRTService(t)
	tree := newRTTree(t, 3)

	// The leaf entry: SHA-256 of the statement with its unprotected header
	// emptied, built here from the raw parts.
	p, _, pl, sg := sign1Parts(t, statement)
	empty := append(append(append(append([]byte{0xd2, 0x84}, p...), 0xa0), pl...), sg...)
	entry := sha256.Sum256(empty)
	tree.entries[1] = entry[:]
	tree = rebuild(t, tree.entries)
	root := tree.root(t, 3)
	protected, sig := svc.sign(t, root)
	r1, _ := cose.NewInclusionReceipt(protected, sig, 3, 1, tree.inclusion(t, 3, 1))
	r2, _ := cose.NewConsistencyReceipt(protected, sig, 2, 3, tree.consistency(t, 2, 3))

	ts, err := cose.AttachReceipts(statement, r1)
	if err != nil {
		t.Fatal(err)
	}
	ts, err = cose.AttachReceipts(ts, r2)
	if err != nil {
		t.Fatal(err)
	}
	tp, tuh, tpl, tsg := sign1Parts(t, ts)
	if !bytes.Equal(tp, p) || !bytes.Equal(tpl, pl) || !bytes.Equal(tsg, sg) {
		t.Fatal("AttachReceipts changed the protected header, payload or signature bytes")
	}
	var uh map[int64]any
	if err := cbor.Unmarshal(tuh, &uh); err != nil || uh[-70000] != "kept" {
		t.Fatalf("other unprotected headers not kept: %v %v", uh, err)
	}
	// The statement signature still verifies on the transparent statement.
	var msg gocose.Sign1Message
	if err := msg.UnmarshalCBOR(ts); err != nil {
		t.Fatal(err)
	}
	v, _ := gocose.NewVerifier(gocose.AlgorithmES256, &priv.PublicKey)
	if err := msg.Verify(nil, v); err != nil {
		t.Fatalf("statement signature after AttachReceipts: %v", err)
	}

	st, receipts, err := cose.SplitTransparentStatement(ts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st, empty) {
		t.Fatalf("split statement %x, want %x", st, empty)
	}
	if len(receipts) != 2 || !bytes.Equal(receipts[0], r1) || !bytes.Equal(receipts[1], r2) {
		t.Fatalf("receipts not returned in order")
	}
	if _, err := cose.VerifyInclusion(receipts[0], entry[:], cose.KeySet{svc.key}); err != nil {
		t.Fatal(err)
	}
	// The statement parser agrees on the leaf entry, for the statement and
	// for the transparent statement.
	for _, b := range [][]byte{statement, ts, st} {
		s, err := cose.ParseStatement(b, cose.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.LeafEntry() != entry {
			t.Errorf("Statement.LeafEntry %x, want %x", s.LeafEntry(), entry)
		}
	}

	// A plain statement has no receipts.
	if _, rs, err := cose.SplitTransparentStatement(statement); err != nil || rs != nil {
		t.Errorf("plain statement: %d receipts, %v", len(rs), err)
	}
	// Attaching something that is not a receipt fails.
	if _, err := cose.AttachReceipts(statement, []byte{0xd2, 0x84}); !errors.Is(err, cose.ErrBadReceipt) {
		t.Errorf("bad receipt attached: %v", err)
	}
	if _, err := cose.AttachReceipts(statement); err == nil {
		t.Error("AttachReceipts without receipts succeeded")
	}
	// Malformed 394 headers.
	for name, v := range map[string]any{
		"not an array": []byte("x"),
		"empty array":  []any{},
		"text element": []any{"receipt"},
	} {
		bad, _ := signTestStatement(t, map[any]any{int64(394): v})
		if _, _, err := cose.SplitTransparentStatement(bad); !errors.Is(err, cose.ErrBadTransparentStatement) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for i := range ts {
		if _, _, err := cose.SplitTransparentStatement(ts[:i]); err == nil {
			t.Fatalf("truncation to %d bytes accepted", i)
		}
	}
}

func rebuild(t *testing.T, entries [][]byte) *rtTree {
	t.Helper()
	tree := &rtTree{}
	for i, e := range entries {
		tree.entries = append(tree.entries, e)
		hs, err := tlog.StoredHashes(int64(i), e, tree)
		if err != nil {
			t.Fatal(err)
		}
		tree.stored = append(tree.stored, hs...)
	}
	return tree
}
