package cose_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// TestDecodeSign1: the one envelope decoder of statements, receipts and
// governance requests, each malformed case named with the detail it gives.
func TestDecodeSign1(t *testing.T) {
	prot := []byte{0xa1, 0x01, 0x26} // {1: -7}
	enc := func(elems ...any) []byte {
		b, err := cose.Marshal(elems)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{0xd2}, b...)
	}
	good := enc(prot, map[any]any{}, []byte("p"), []byte("sig"))
	m, err := cose.DecodeSign1(good, cose.Sign1Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Protected, prot) || string(m.Payload) != "p" || string(m.Signature) != "sig" || !bytes.Equal(m.Unprotected, []byte{0xa0}) {
		t.Fatalf("decoded %+v", m)
	}
	if got := append(append(append(append([]byte{0xd2, 0x84}, m.Elements[0]...), m.Elements[1]...), m.Elements[2]...), m.Elements[3]...); !bytes.Equal(got, good) {
		t.Errorf("elements re-emit %x, want %x", got, good)
	}
	if m, err := cose.DecodeSign1(enc(prot, map[any]any{}, nil, []byte("sig")), cose.Sign1Options{}); err != nil || m.Payload != nil {
		t.Errorf("detached payload: %v, %v", m, err)
	}
	if m, err := cose.DecodeSign1(enc(prot, map[any]any{}, []byte{}, []byte("sig")), cose.Sign1Options{}); err != nil || m.Payload == nil {
		t.Errorf("empty payload: %v, %v", m, err)
	}

	for _, c := range []struct {
		name, want string
		b          []byte
		opts       cose.Sign1Options
	}{
		{"empty", "not a tagged COSE_Sign1", nil, cose.Sign1Options{}},
		{"untagged", "not a tagged COSE_Sign1", good[1:], cose.Sign1Options{}},
		{"tag 18 in two bytes", "not a tagged COSE_Sign1", append([]byte{0xd8, 0x12}, good[1:]...), cose.Sign1Options{}},
		{"array of 3", "COSE_Sign1: cbor", enc(prot, map[any]any{}, []byte("p")), cose.Sign1Options{}},
		{"trailing byte", "COSE_Sign1: cbor", append(bytes.Clone(good), 0x00), cose.Sign1Options{}},
		{"indefinite array", "COSE_Sign1: cbor", append(append([]byte{0xd2, 0x9f}, good[2:]...), 0xff), cose.Sign1Options{}},
		{"protected as map", "protected header: not a byte string", enc(map[any]any{1: -7}, map[any]any{}, []byte("p"), []byte("sig")), cose.Sign1Options{}},
		{"unprotected nil", "unprotected header is not a map", enc(prot, nil, []byte("p"), []byte("sig")), cose.Sign1Options{}},
		{"unprotected not empty", "unprotected header is not an empty map", enc(prot, map[any]any{4: []byte("k")}, []byte("p"), []byte("sig")), cose.Sign1Options{EmptyUnprotected: true}},
		{"payload as text", "payload: not a byte string", enc(prot, map[any]any{}, "p", []byte("sig")), cose.Sign1Options{}},
		{"signature as text", "signature: not a byte string", enc(prot, map[any]any{}, []byte("p"), "sig"), cose.Sign1Options{}},
		{"empty signature", "empty signature", enc(prot, map[any]any{}, []byte("p"), []byte{}), cose.Sign1Options{}},
	} {
		_, err := cose.DecodeSign1(c.b, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// VerifySign1 hashes the Sig_structure as it streams it for verifiers that
// take a digest: its answer must be the one the verifier gives over the
// whole Sig_structure, for every algorithm and for payloads whose length
// takes each size of CBOR head.
func TestVerifySign1MatchesVerify(t *testing.T) {
	for _, alg := range []gocose.Algorithm{gocose.AlgorithmES256, gocose.AlgorithmES384, gocose.AlgorithmES512, gocose.AlgorithmPS256, gocose.AlgorithmEdDSA} {
		var key crypto.Signer
		var err error
		switch alg {
		case gocose.AlgorithmES256:
			key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case gocose.AlgorithmES384:
			key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case gocose.AlgorithmES512:
			key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		case gocose.AlgorithmPS256:
			key, err = rsa.GenerateKey(rand.Reader, 2048)
		case gocose.AlgorithmEdDSA:
			_, key, err = ed25519.GenerateKey(rand.Reader)
		}
		if err != nil {
			t.Fatal(err)
		}
		signer, err := gocose.NewSigner(alg, key)
		if err != nil {
			t.Fatal(err)
		}
		v, err := gocose.NewVerifier(alg, key.Public())
		if err != nil {
			t.Fatal(err)
		}
		prot := []byte{0xa1, 0x01, 0x26}
		for _, n := range []int{0, 23, 24, 255, 256, 65535, 65536} {
			payload := bytes.Repeat([]byte{byte(n)}, n)
			sig, err := signer.Sign(rand.Reader, cose.SigStructure(prot, payload))
			if err != nil {
				t.Fatal(err)
			}
			if err := cose.VerifySign1(v, alg, prot, payload, sig); err != nil {
				t.Errorf("%v, %d-byte payload: %v", alg, n, err)
			}
			other := append(bytes.Clone(payload), 0)
			if err := cose.VerifySign1(v, alg, prot, other, sig); err == nil {
				t.Errorf("%v, %d-byte payload: another payload verifies", alg, n)
			}
			if err := cose.VerifySign1(v, alg, []byte{0xa1, 0x01, 0x27}, payload, sig); err == nil {
				t.Errorf("%v, %d-byte payload: another protected header verifies", alg, n)
			}
		}
	}
}

// The decoded envelope shares the message's bytes rather than copying
// them: a statement is read once.
func TestDecodeSign1Aliases(t *testing.T) {
	b, err := cose.Marshal([]any{[]byte{0xa1, 0x01, 0x26}, map[any]any{}, bytes.Repeat([]byte{1}, 1000), []byte("sig")})
	if err != nil {
		t.Fatal(err)
	}
	msg := append([]byte{0xd2}, b...)
	m, err := cose.DecodeSign1(msg, cose.Sign1Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg[len(msg)-500] = 2
	if m.Payload[len(m.Payload)-500+len("sig")+1] != 2 {
		t.Fatal("the payload is a copy")
	}
	if cap(m.Payload) != len(m.Payload) {
		t.Fatal("appending to the payload would write over the signature")
	}
}
