package cose

import (
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
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

// sign1Array is COSE_Sign1 (RFC 9052 §4.2) with each element raw, so that
// its type can be checked one by one with a precise error.
type sign1Array struct {
	_           struct{} `cbor:",toarray"`
	Protected   cbor.RawMessage
	Unprotected cbor.RawMessage
	Payload     cbor.RawMessage
	Signature   cbor.RawMessage
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
// as a signed statement's.
func DecodeSign1(b []byte, opts Sign1Options) (*Sign1, error) {
	if len(b) < 2 || b[0] != 0xd2 {
		return nil, errors.New("not a tagged COSE_Sign1 (tag 18)")
	}
	return decodeSign1Array(b[1:], opts)
}

// decodeSign1Array decodes the COSE_Sign1 array itself, without its tag.
func decodeSign1Array(b []byte, opts Sign1Options) (*Sign1, error) {
	var a sign1Array
	if err := decMode.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %v", err)
	}
	m := &Sign1{
		Unprotected: a.Unprotected,
		Elements:    [4]cbor.RawMessage{a.Protected, a.Unprotected, a.Payload, a.Signature},
	}
	var err error
	// RFC 9052 §4.2: protected is "empty_or_serialized_map", a bstr.
	if m.Protected, err = cbor.DecodeBytes(a.Protected); err != nil {
		return nil, fmt.Errorf("protected header: %v", err)
	}
	switch {
	case opts.EmptyUnprotected && (len(a.Unprotected) != 1 || a.Unprotected[0] != 0xa0):
		return nil, errors.New("unprotected header is not an empty map")
	case cbor.Major(a.Unprotected) != cbor.MajorMap:
		return nil, errors.New("unprotected header is not a map")
	}
	// RFC 9052 §4.2: "payload : bstr / nil".
	if len(a.Payload) != 1 || a.Payload[0] != cborNil {
		if m.Payload, err = cbor.DecodeBytes(a.Payload); err != nil {
			return nil, fmt.Errorf("payload: %v (nor nil)", err)
		}
	}
	if m.Signature, err = cbor.DecodeBytes(a.Signature); err != nil {
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
