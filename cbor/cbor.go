// Package cbor is Charter's one CBOR policy: how every format Charter reads
// decodes bytes that may come from outside, and how everything Charter
// writes is encoded.
//
// It wraps github.com/fxamacker/cbor/v2 so that no other package needs to
// import it: the library's package-level Unmarshal uses its lenient default
// mode (duplicate map keys and indefinite lengths accepted), and a format
// that called it by mistake would silently accept what its siblings refuse.
// The types callers need (RawMessage, RawTag, Tag, DecMode) are aliases, so
// values move freely between this package and code that still uses the
// library directly.
//
// The decoding policy, for every format:
//
//   - duplicate map keys are an error (RFC 8949 §5.6: a decoder may accept
//     them, and two decoders that pick different duplicates see different
//     messages under one signature);
//   - indefinite-length items are an error: nothing Charter reads is
//     streamed, and COSE (RFC 9052 §3), receipts and Core Deterministic
//     Encoding (RFC 8949 §4.2.1) all use definite lengths;
//   - nesting, array and map sizes are bounded (Limits), so a small input
//     cannot make the decoder recurse deeply or allocate for millions of
//     elements;
//   - byte and text strings are bounded by the input itself: the decoder
//     checks the whole item is well-formed (every declared length within the
//     bytes present) before it allocates anything, so a string can be no
//     longer than the input, and every format bounds its input before
//     decoding (statements, requests, evidence, raft entries);
//   - text must be valid UTF-8 (RFC 8949 §3.1, major type 3);
//   - integers decoded into an interface value become int64 (an error if
//     they do not fit), so that map labels compare as one Go type (COSE
//     header labels, RFC 9052 §3.1).
//
// Tags are accepted by the policy because COSE is tagged (#6.18); formats
// that define none refuse them with Options.RefuseTags.
//
// Encoding is Core Deterministic Encoding (RFC 8949 §4.2.1): the same value
// always has the same bytes, and so the same hash and signature.
package cbor

import (
	"fmt"

	fx "github.com/fxamacker/cbor/v2"
)

// Types shared with the library, so a value decoded here can be passed to
// code (tests, go-cose) that uses the library directly.
type (
	// RawMessage is an encoded CBOR item, kept as received.
	RawMessage = fx.RawMessage
	// RawTag is a tag number and its content, kept as received.
	RawTag = fx.RawTag
	// Tag is a tag number and its content, for encoding.
	Tag = fx.Tag
	// DecMode decodes under a policy; see NewDecMode.
	DecMode = fx.DecMode
)

// The policy's bounds for messages from outside: statements, receipts,
// governance requests, key sets, peers' records of themselves. Generous for
// every such format Charter defines (a COSE header is a handful of labels, a
// proof path at most 64 hashes) and small enough that a hostile input
// cannot make one decode expensive.
const (
	DefaultMaxNestedLevels  = 16
	DefaultMaxArrayElements = 4096
	DefaultMaxMapPairs      = 1024
)

// LedgerOptions are the policy's options for what nodes commit to the
// ledger and replicate among themselves (raft batches, transaction bodies,
// the genesis): Charter wrote it, a peer authenticated it, and its sizes are
// bounded by the writer's own limits, some configurable (MaxBatch proposals
// per raft entry, log.MaxReads reads per app transaction, any number of
// trusted CAs in a genesis), so the bounds are wide enough that whatever a
// node has stored still decodes, and still finite.
func LedgerOptions() Options {
	return Options{MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 16}
}

// Options derives a format's decoder from the policy. The zero value is the
// policy itself. What makes the policy strict (duplicate keys, indefinite
// lengths, invalid UTF-8) cannot be relaxed here: a format may only change
// the bounds and refuse more.
type Options struct {
	// MaxNestedLevels, MaxArrayElements and MaxMapPairs replace the
	// policy's bounds when non-zero. The library requires at least 4, 16
	// and 16.
	MaxNestedLevels  int
	MaxArrayElements int
	MaxMapPairs      int
	// RefuseUnknownFields makes a map key that names no field of the Go
	// struct it decodes into an error, for formats in which every key must
	// be understood. Formats a newer version may extend leave it unset.
	RefuseUnknownFields bool
	// RefuseTags makes any CBOR tag an error, for formats that define none.
	RefuseTags bool
}

func (o Options) decOptions() fx.DecOptions {
	d := fx.DecOptions{
		DupMapKey:        fx.DupMapKeyEnforcedAPF,
		IndefLength:      fx.IndefLengthForbidden,
		MaxNestedLevels:  DefaultMaxNestedLevels,
		MaxArrayElements: DefaultMaxArrayElements,
		MaxMapPairs:      DefaultMaxMapPairs,
		IntDec:           fx.IntDecConvertSigned,
		UTF8:             fx.UTF8RejectInvalid,
	}
	if o.MaxNestedLevels != 0 {
		d.MaxNestedLevels = o.MaxNestedLevels
	}
	if o.MaxArrayElements != 0 {
		d.MaxArrayElements = o.MaxArrayElements
	}
	if o.MaxMapPairs != 0 {
		d.MaxMapPairs = o.MaxMapPairs
	}
	if o.RefuseUnknownFields {
		d.ExtraReturnErrors = fx.ExtraDecErrorUnknownField
	}
	if o.RefuseTags {
		d.TagsMd = fx.TagsForbidden
	}
	return d
}

// NewDecMode returns a decoder for the policy adjusted by o. Formats call it
// once, in a package-level variable; it panics on bounds the library
// refuses, a programming error that any test of the format catches.
func NewDecMode(o Options) DecMode {
	m, err := o.decOptions().DecMode()
	if err != nil {
		panic(fmt.Sprintf("cbor: decoder options %+v: %v", o, err))
	}
	return m
}

var (
	decMode = NewDecMode(Options{})
	encMode = func() fx.EncMode {
		m, err := fx.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(fmt.Sprintf("cbor: encoder options: %v", err))
		}
		return m
	}()
)

// Unmarshal decodes data into v under the policy, with its default bounds.
// Trailing bytes after the item are an error.
func Unmarshal(data []byte, v any) error { return decMode.Unmarshal(data, v) }

// Wellformed reports whether data is exactly one well-formed CBOR item under
// the policy (RFC 8949 §5.3.1, and the policy's bounds).
func Wellformed(data []byte) error { return decMode.Wellformed(data) }

// Marshal encodes v with Core Deterministic Encoding.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }
