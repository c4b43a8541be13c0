package cose

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Decoder policy for every byte string that arrives from outside (statements,
// receipts, key sets). It is strict in the same ways as go-cose's own decoder:
// duplicate map keys and indefinite-length items are errors, nesting and
// collection sizes are bounded, and nothing the sender chose is trusted to be
// canonical — callers keep the received bytes and verify over those.
var decMode = mustDecMode(cbor.DecOptions{
	DupMapKey:         cbor.DupMapKeyEnforcedAPF,
	IndefLength:       cbor.IndefLengthForbidden,
	MaxNestedLevels:   16,
	MaxArrayElements:  4096,
	MaxMapPairs:       1024,
	IntDec:            cbor.IntDecConvertSigned,
	UTF8:              cbor.UTF8RejectInvalid,
	DefaultMapType:    nil,
	ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
})

// encMode produces Core Deterministic Encoding (RFC 8949 §4.2.1) for
// everything Charter itself writes, so the same value always has the same
// bytes and the same hash.
var encMode = mustEncMode(cbor.CoreDetEncOptions())

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		// The options are constants; an error here is a programming error
		// caught by any test that imports the package.
		panic(fmt.Sprintf("cose: decoder options: %v", err))
	}
	return m
}

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(fmt.Sprintf("cose: encoder options: %v", err))
	}
	return m
}

// Unmarshal decodes data under Charter's strict decoder policy.
func Unmarshal(data []byte, v any) error { return decMode.Unmarshal(data, v) }

// Marshal encodes v with Core Deterministic Encoding.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }
