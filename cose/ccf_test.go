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

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// ccfFixture is a CCF-style receipt built independently of cose's CCF code:
// the leaf and the path fold are computed here from the format description
// in shared/testdata/interop/README.md.
type ccfFixture struct {
	priv      *ecdsa.PrivateKey
	key       cose.Key
	protected []byte
	wsd, cd   []byte
	ce        string
	path      []any // [[bool, bstr]]
	root      []byte
}

func sha(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func newCCFFixture(t *testing.T, claimsDigest []byte) *ccfFixture {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := cose.NewKey(&priv.PublicKey)
	f := &ccfFixture{priv: priv, key: key, cd: claimsDigest,
		wsd: sha([]byte("write set")), ce: "ce:2.18:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	acc := sha(f.wsd, sha([]byte(f.ce)), f.cd)
	for i, left := range []bool{true, false, true} {
		h := sha([]byte{byte(i)})
		f.path = append(f.path, []any{left, h})
		if left {
			acc = sha(h, acc)
		} else {
			acc = sha(acc, h)
		}
	}
	f.root = acc
	f.protected, _ = cose.Marshal(map[any]any{
		1: -35, 4: key.Kid, 395: 2,
		15:       map[any]any{1: "ccf.example", 2: "scitt.ccf.signature.v1", 6: 1782496248},
		"ccf.v1": map[string]any{"txid": "2.19"},
	})
	return f
}

// receipt assembles the receipt with the given proof map, signed over root.
func (f *ccfFixture) receipt(t *testing.T, proof any, root []byte) []byte {
	t.Helper()
	pb, err := cose.Marshal(proof)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := gocose.NewSigner(gocose.AlgorithmES384, f.priv)
	tbs, _ := cose.Marshal([]any{"Signature1", f.protected, []byte{}, root})
	sig, err := signer.Sign(rand.Reader, tbs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cose.Marshal(cbor.Tag{Number: 18, Content: []any{f.protected, map[any]any{396: map[any]any{-1: [][]byte{pb}}}, nil, sig}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *ccfFixture) proof() map[any]any {
	return map[any]any{1: []any{f.wsd, f.ce, f.cd}, 2: f.path}
}

func TestCCFReceipt(t *testing.T) {
	entry := sha([]byte("statement"))
	f := newCCFFixture(t, entry)
	keys := cose.KeySet{f.key}
	good := f.receipt(t, f.proof(), f.root)
	vr, err := cose.VerifyInclusion(good, entry, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vr.Root, f.root) || vr.VDS != cose.VDSCCF || vr.TxID != "2.18" || vr.SignedTxID != "2.19" ||
		vr.Claims.Subject != "scitt.ccf.signature.v1" || vr.Claims.IssuedAt != 1782496248 {
		t.Errorf("verified %+v", vr)
	}
	r, _ := cose.ParseReceipt(good)
	if r.CCFTxID != "2.19" || len(r.CCF) != 1 || r.CCF[0].CommitEvidence != f.ce || !r.CCF[0].Path[0].Left || r.CCF[0].Path[1].Left {
		t.Errorf("parsed %+v", r)
	}

	// The claims digest must be the entry.
	if _, err := cose.VerifyInclusion(good, sha([]byte("other")), keys); !errors.Is(err, cose.ErrProof) {
		t.Errorf("other entry: %v", err)
	}
	// Every change to the leaf or path moves the root off the signed one.
	mutate := func(name string, edit func(p map[any]any)) {
		p := f.proof()
		p[1] = append([]any{}, p[1].([]any)...)
		path := make([]any, len(f.path))
		for i, e := range f.path {
			path[i] = append([]any{}, e.([]any)...)
		}
		p[2] = path
		edit(p)
		if _, err := cose.VerifyInclusion(f.receipt(t, p, f.root), entry, keys); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	mutate("write set digest", func(p map[any]any) { p[1].([]any)[0] = sha([]byte("x")) })
	mutate("commit evidence", func(p map[any]any) { p[1].([]any)[1] = f.ce + "0" })
	for i := range f.path {
		mutate("left flag", func(p map[any]any) { e := p[2].([]any)[i].([]any); e[0] = !e[0].(bool) })
		for bit := range 256 {
			mutate("path bit", func(p map[any]any) {
				e := p[2].([]any)[i].([]any)
				h := bytes.Clone(e[1].([]byte))
				h[bit/8] ^= 1 << (bit % 8)
				e[1] = h
			})
		}
	}
	mutate("dropped step", func(p map[any]any) { p[2] = p[2].([]any)[1:] })

	// Malformed CCF proofs are ErrBadReceipt.
	for name, p := range map[string]any{
		"RFC 9162 proof under vds 2": []any{8, 2, [][]byte{f.root}},
		"no path":                    map[any]any{1: []any{f.wsd, f.ce, f.cd}},
		"extra label":                map[any]any{1: []any{f.wsd, f.ce, f.cd}, 2: f.path, 3: 0},
		"short leaf":                 map[any]any{1: []any{f.wsd, f.ce}, 2: f.path},
		"bstr commit evidence":       map[any]any{1: []any{f.wsd, []byte(f.ce), f.cd}, 2: f.path},
		"short claims digest":        map[any]any{1: []any{f.wsd, f.ce, f.cd[:31]}, 2: f.path},
		"int left flag":              map[any]any{1: []any{f.wsd, f.ce, f.cd}, 2: []any{[]any{1, f.cd}}},
		"short path hash":            map[any]any{1: []any{f.wsd, f.ce, f.cd}, 2: []any{[]any{true, f.cd[:5]}}},
	} {
		_, err := cose.ParseReceipt(f.receipt(t, p, f.root))
		if !errors.Is(err, cose.ErrBadReceipt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
