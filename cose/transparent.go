package cose

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
)

// Transparent statements.
//
// RFC 9942 §4.3: "This document registers a new COSE Header Parameter
// receipts (…) to enable Receipts to be conveyed in the protected and
// unprotected headers of COSE Objects." (label 394). Charter reads and
// writes them in the unprotected header only.
//
// A transparent statement is a signed statement with its receipts in the
// unprotected header, label 394, as an array of receipt byte strings. The
// unprotected header is not signed, so receipts are added without touching
// the statement's protected header, payload or signature: the functions
// here copy those three elements byte for byte and only rewrite the
// unprotected map.

// ErrBadTransparentStatement is returned for a statement or transparent
// statement that is not a well-formed tagged COSE_Sign1, or whose receipts
// header (394) is not an array of byte strings.
var ErrBadTransparentStatement = errors.New("cose: malformed transparent statement")

// maxReceipts bounds the receipts one statement may carry.
const maxReceipts = 64

func badTS(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadTransparentStatement, fmt.Sprintf(format, args...))
}

// splitReceipts parses a tagged COSE_Sign1 and returns its parts, its
// unprotected header with 394 removed, and the receipts it held.
func splitReceipts(b []byte) (*Sign1, map[any]cbor.RawMessage, [][]byte, error) {
	m, err := DecodeSign1(b, Sign1Options{})
	if err != nil {
		return nil, nil, nil, badTS("%v", err)
	}
	uh, err := decodeHeaderMap(m.Unprotected)
	if err != nil {
		return nil, nil, nil, badTS("unprotected header: %v", err)
	}
	raw, ok := uh[int64(labelReceipts)]
	if !ok {
		return m, uh, nil, nil
	}
	delete(uh, int64(labelReceipts))
	// RFC 9942 §4.3: "&(receipts: 394) => [+ bstr .cbor Receipt]"
	arr, err := cbor.DecodeArray(raw)
	if err != nil {
		return nil, nil, nil, badTS("receipts (394): %v", err)
	}
	if len(arr) == 0 || len(arr) > maxReceipts {
		return nil, nil, nil, badTS("receipts (394) holds %d receipts, want 1 to %d", len(arr), maxReceipts)
	}
	receipts := make([][]byte, len(arr))
	for i, e := range arr {
		if receipts[i], err = cbor.DecodeBytes(e); err != nil {
			return nil, nil, nil, badTS("receipt %d: %v", i+1, err)
		}
	}
	return m, uh, receipts, nil
}

// assemble writes 18([protected, unprotected, payload, signature]) with the
// raw elements of m and the given unprotected header.
func assemble(m *Sign1, uh map[any]cbor.RawMessage) ([]byte, error) {
	uhBytes, err := cbor.Marshal(uh)
	if err != nil {
		return nil, err
	}
	protected, payload, sig := m.Elements[0], m.Elements[2], m.Elements[3]
	var out bytes.Buffer
	out.Grow(2 + len(protected) + len(uhBytes) + len(payload) + len(sig))
	out.WriteByte(0xd2) // tag 18
	out.WriteByte(0x84) // array of 4
	out.Write(protected)
	out.Write(uhBytes)
	out.Write(payload)
	out.Write(sig)
	return out.Bytes(), nil
}

// AttachReceipts returns statement with receipts appended to its receipts
// header (394), after any receipts it already carries. Every receipt must
// parse (ParseReceipt); none is verified. The protected header, payload and
// signature bytes are kept verbatim; other unprotected headers are kept and
// the unprotected map is re-encoded deterministically.
func AttachReceipts(statement []byte, receipts ...[]byte) ([]byte, error) {
	m, uh, existing, err := splitReceipts(statement)
	if err != nil {
		return nil, err
	}
	for i, r := range receipts {
		if _, err := ParseReceipt(r); err != nil {
			return nil, fmt.Errorf("receipt %d: %w", i+1, err)
		}
	}
	all := append(append([][]byte{}, existing...), receipts...)
	if len(all) == 0 {
		return nil, errors.New("cose: AttachReceipts without receipts")
	}
	if len(all) > maxReceipts {
		return nil, badTS("%d receipts, at most %d", len(all), maxReceipts)
	}
	enc, err := cbor.Marshal(all)
	if err != nil {
		return nil, err
	}
	uh[int64(labelReceipts)] = enc
	return assemble(m, uh)
}

// SplitTransparentStatement separates a transparent statement into the
// signed statement, with its unprotected header reset to {} (the form whose
// SHA-256 is the statement's leaf entry), and the receipts of its 394
// header, in order. A statement without receipts gives no receipts and no
// error; callers that need one must check.
func SplitTransparentStatement(ts []byte) (statement []byte, receipts [][]byte, err error) {
	m, _, receipts, err := splitReceipts(ts)
	if err != nil {
		return nil, nil, err
	}
	statement, err = assemble(m, map[any]cbor.RawMessage{})
	if err != nil {
		return nil, nil, err
	}
	return statement, receipts, nil
}
