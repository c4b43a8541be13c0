package cose

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

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

// cborNil is CBOR's null (RFC 8949 §3.3), a COSE_Sign1's detached payload.
const cborNil byte = 0xf6

// decodeHeaderMap decodes a header map (or CWT claims map) whose labels are
// ints or text, refusing duplicate labels (1 and "1" are two labels; 1 and
// a non-shortest 1 are one). The values are sub-slices of raw.
func decodeHeaderMap(raw []byte) (map[any]cbor.RawMessage, error) {
	if cbor.Major(raw) != cbor.MajorMap {
		return nil, errors.New("not a map")
	}
	// The policy's checks over the whole map first (one item, nesting,
	// sizes, indefinite lengths, UTF-8); the pairs are then only split,
	// and each value is a sub-slice of raw, not a copy.
	if err := decMode.Wellformed(raw); err != nil {
		return nil, err
	}
	_, n, k, _ := cbor.ReadHead(raw)
	rest := raw[k:]
	out := make(map[any]cbor.RawMessage, n)
	for range n {
		label, after, err := cbor.Split(rest)
		if err != nil {
			return nil, err
		}
		value, after, err := cbor.Split(after)
		if err != nil {
			return nil, err
		}
		rest = after
		var key any
		switch major, arg, k, _ := cbor.ReadHead(label); {
		case major == cbor.MajorUint && arg <= math.MaxInt64:
			key = int64(arg)
		case major == cbor.MajorNint && arg <= math.MaxInt64:
			key = -1 - int64(arg)
		case major == cbor.MajorUint || major == cbor.MajorNint:
			// Only for labels beyond int64, which no registry assigns.
			return nil, fmt.Errorf("label %x out of range", label)
		case major == cbor.MajorText && utf8.Valid(label[k:]):
			key = string(label[k:])
		case major == cbor.MajorText:
			return nil, errors.New("cbor: invalid UTF-8 string")
		default:
			return nil, fmt.Errorf("label of major type %d; labels are int or text", major>>5)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("cbor: found duplicate map key %v", key)
		}
		out[key] = value[:len(value):len(value)]
	}
	return out, nil
}
