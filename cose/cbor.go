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

// cborNil is CBOR's null (RFC 8949 §3.3), a COSE_Sign1's detached payload.
const cborNil byte = 0xf6

// decodeHeaderMap decodes a header map (or CWT claims map) whose labels are
// ints or text. Duplicate labels are rejected by decMode.
func decodeHeaderMap(raw []byte) (map[any]cbor.RawMessage, error) {
	if cbor.Major(raw) != cbor.MajorMap {
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
