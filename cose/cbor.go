package cose

import "github.com/charterlog/charter/cbor"

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
