package cose

import (
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
)

// decMode decodes every byte string that arrives from outside (statements,
// receipts, key sets) under Charter's CBOR policy (package cbor: duplicate
// map keys and indefinite lengths refused, nesting and sizes bounded), and
// also refuses map keys a struct does not name: a COSE structure this
// package decodes into a struct is fully understood or not accepted.
// Nothing the sender chose is trusted to be canonical — callers keep the
// received bytes and verify over those.
var decMode = cbor.NewDecMode(cbor.Options{RefuseUnknownFields: true})

// Unmarshal decodes data under cose's decoder policy (decMode).
func Unmarshal(data []byte, v any) error { return decMode.Unmarshal(data, v) }

// Marshal encodes v with Core Deterministic Encoding (RFC 8949 §4.2.1), as
// everything Charter writes, so the same value always has the same bytes
// and the same hash.
func Marshal(v any) ([]byte, error) { return cbor.Marshal(v) }

// Typed decoders for the elements of COSE structures. Each checks the
// major type first: the library would otherwise convert (a text string into
// []byte, nil into an empty value), and a COSE field has one type.

// CBOR major types, shifted into the high bits of the initial byte.
const (
	cborUint  byte = 0 << 5
	cborNint  byte = 1 << 5
	cborBytes byte = 2 << 5
	cborText  byte = 3 << 5
	cborArray byte = 4 << 5
	cborMap   byte = 5 << 5
	cborTag   byte = 6 << 5
	cborNil   byte = 0xf6
)

func majorType(b []byte) byte {
	if len(b) == 0 {
		return 0xff
	}
	return b[0] & 0xe0
}

// decodeBytes decodes a byte string, refusing every other type (a tstr, a
// tagged bstr, nil). An empty bstr is an empty slice, not nil.
func decodeBytes(raw []byte) ([]byte, error) {
	if majorType(raw) != cborBytes {
		return nil, errors.New("not a byte string")
	}
	var out []byte
	if err := decMode.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

func decodeInt(raw []byte) (int64, error) {
	if mt := majorType(raw); mt != cborUint && mt != cborNint {
		return 0, errors.New("not an integer")
	}
	var n int64
	if err := decMode.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	return n, nil
}

// decodeHeaderMap decodes a header map (or CWT claims map) whose labels are
// ints or text. Duplicate labels are rejected by decMode.
func decodeHeaderMap(raw []byte) (map[any]cbor.RawMessage, error) {
	if majorType(raw) != cborMap {
		return nil, errors.New("not a map")
	}
	var m map[any]cbor.RawMessage
	if err := decMode.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := make(map[any]cbor.RawMessage, len(m))
	for k, v := range m {
		switch l := k.(type) {
		case int64:
			out[l] = v
		case uint64:
			// Only for labels above MaxInt64, which no registry assigns.
			return nil, fmt.Errorf("label %d out of range", l)
		case string:
			out[l] = v
		default:
			return nil, fmt.Errorf("label of type %T; labels are int or text", k)
		}
	}
	return out, nil
}

func decodeUint(raw cbor.RawMessage) (uint64, error) {
	if majorType(raw) != cborUint {
		return 0, errors.New("not an unsigned integer")
	}
	var v uint64
	err := decMode.Unmarshal(raw, &v)
	return v, err
}

func decodeText(raw cbor.RawMessage) (string, error) {
	if majorType(raw) != cborText {
		return "", errors.New("not a text string")
	}
	var s string
	err := decMode.Unmarshal(raw, &s)
	return s, err
}

// decodeArray decodes a CBOR array into its raw elements, refusing null.
func decodeArray(raw cbor.RawMessage) ([]cbor.RawMessage, error) {
	if majorType(raw) != cborArray {
		return nil, errors.New("not an array")
	}
	var a []cbor.RawMessage
	if err := decMode.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return a, nil
}
