package cose_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charterlog/charter/cose"
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
