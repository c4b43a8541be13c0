package cose

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"github.com/charterlog/charter/cbor"
	gocose "github.com/veraison/go-cose"
)

// Sign1 is the envelope of a COSE_Sign1 message (RFC 9052 §4.2), as
// DecodeSign1 found it. Nothing in it is verified, and no header's content
// is checked: what the headers must hold is each format's (statements,
// receipts, governance requests).
type Sign1 struct {
	// Protected is the protected header bstr's content: body_protected,
	// the bytes the signature covers (RFC 9052 §4.4), never a re-encoding.
	Protected []byte
	// Unprotected is the unprotected header map as received.
	Unprotected cbor.RawMessage
	// Payload is the payload bstr's content; nil when the payload is
	// detached (CBOR nil), empty (not nil) for an empty bstr.
	Payload []byte
	// Signature is the signature bstr's content, never empty.
	Signature []byte
	// Elements are the array's four elements as encoded, head included, to
	// re-emit the message byte for byte around a changed element.
	Elements [4]cbor.RawMessage
}

// Sign1Options are what a format demands of the envelope beyond RFC 9052.
type Sign1Options struct {
	// EmptyUnprotected demands an empty unprotected header, {}: anything
	// in it would be unauthenticated.
	EmptyUnprotected bool
}

// DecodeSign1 decodes a COSE_Sign1_Tagged message strictly, under the CBOR
// policy: the one-byte head of tag 18 (0xd2; RFC 9052 §4.2:
// "COSE_Sign1_Tagged = #6.18(COSE_Sign1)"), then an array of exactly four —
// protected a bstr, unprotected a map, payload a bstr or nil, signature a
// non-empty bstr — and nothing after it. The headers are only typed here:
// their labels, duplicates among them included, are refused when the format
// decodes them.
//
// The error says which element is wrong and wraps no sentinel: each format
// wraps it in its own (ErrNotCOSE, ErrBadReceipt, a governance request's
// ErrMalformed). ParseSign1, unlike DecodeSign1, also parses the headers
// as a signed statement's. The result aliases b, which must not change
// while it is in use.
func DecodeSign1(b []byte, opts Sign1Options) (*Sign1, error) {
	if len(b) < 2 || b[0] != 0xd2 {
		return nil, errors.New("not a tagged COSE_Sign1 (tag 18)")
	}
	return decodeSign1Array(b[1:], opts)
}

// decodeSign1Array decodes the COSE_Sign1 array itself, without its tag.
// The elements, the payload and the signature are sub-slices of b, not
// copies: a statement is read once and its bytes are shared by every step
// that follows (the signature's digest, the policy, the ledger record), so
// b must not change after the call.
func decodeSign1Array(b []byte, opts Sign1Options) (*Sign1, error) {
	// The policy's checks (nesting, sizes, indefinite lengths, UTF-8) over
	// the whole message first; the elements are then only split.
	if err := decMode.Wellformed(b); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %v", err)
	}
	major, n, head, ok := cbor.ReadHead(b)
	if !ok || major != cbor.MajorArray || n != 4 {
		return nil, errors.New("COSE_Sign1: cbor: not an array of four elements")
	}
	m := &Sign1{}
	rest := b[head:]
	for i := range m.Elements {
		item, after, err := cbor.Split(rest)
		if err != nil {
			return nil, fmt.Errorf("COSE_Sign1: %v", err)
		}
		m.Elements[i] = item[:len(item):len(item)]
		rest = after
	}
	protected, unprotected, payload, signature := m.Elements[0], m.Elements[1], m.Elements[2], m.Elements[3]
	m.Unprotected = unprotected
	var err error
	// RFC 9052 §4.2: protected is "empty_or_serialized_map", a bstr.
	if m.Protected, err = cbor.BytesContent(protected); err != nil {
		return nil, fmt.Errorf("protected header: %v", err)
	}
	switch {
	case opts.EmptyUnprotected && (len(unprotected) != 1 || unprotected[0] != 0xa0):
		return nil, errors.New("unprotected header is not an empty map")
	case cbor.Major(unprotected) != cbor.MajorMap:
		return nil, errors.New("unprotected header is not a map")
	}
	// RFC 9052 §4.2: "payload : bstr / nil".
	if len(payload) != 1 || payload[0] != cborNil {
		if m.Payload, err = cbor.BytesContent(payload); err != nil {
			return nil, fmt.Errorf("payload: %v (nor nil)", err)
		}
	}
	if m.Signature, err = cbor.BytesContent(signature); err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	if len(m.Signature) == 0 {
		return nil, errors.New("empty signature")
	}
	return m, nil
}

// SigStructure returns the RFC 9052 §4.4 Sig_structure for a COSE_Sign1
// with empty external_aad, the bytes its signature covers:
//
//	["Signature1", body_protected, external_aad, payload]
//
// protected is the protected header bstr's content as received (Sign1's
// Protected), never a re-encoding.
func SigStructure(protected, payload []byte) []byte {
	out := make([]byte, 0, 32+len(protected)+len(payload))
	out = append(out, 0x84, 0x6a)
	out = append(out, "Signature1"...)
	out = cbor.AppendBytes(out, protected)
	out = append(out, 0x40)
	return cbor.AppendBytes(out, payload)
}

// VerifySign1 checks signature, made with alg, over the Sig_structure of
// protected and payload (SigStructure) with v. ECDSA and RSA-PSS verifiers
// take a digest: for them the Sig_structure is hashed as it is written, so
// a large payload is read once and never copied into a Sig_structure.
func VerifySign1(v gocose.Verifier, alg gocose.Algorithm, protected, payload, signature []byte) error {
	dv, ok := v.(gocose.DigestVerifier)
	var h hash.Hash
	switch alg {
	case gocose.AlgorithmES256, gocose.AlgorithmPS256:
		h = sha256.New()
	case gocose.AlgorithmES384, gocose.AlgorithmPS384:
		h = sha512.New384()
	case gocose.AlgorithmES512, gocose.AlgorithmPS512:
		h = sha512.New()
	default:
		ok = false
	}
	if !ok {
		return v.Verify(SigStructure(protected, payload), signature)
	}
	var head [32]byte
	b := append(head[:0], 0x84, 0x6a)
	b = append(b, "Signature1"...)
	h.Write(cbor.AppendHead(b, cbor.MajorBytes, uint64(len(protected))))
	h.Write(protected)
	h.Write(cbor.AppendHead(append(head[:0], 0x40), cbor.MajorBytes, uint64(len(payload))))
	h.Write(payload)
	return dv.VerifyDigest(h.Sum(nil), signature)
}
