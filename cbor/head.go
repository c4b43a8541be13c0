package cbor

import (
	"encoding/binary"
	"math"
)

// AppendHead appends the head of an item of major type major (MajorBytes,
// MajorText, …) with argument n, in its shortest form (RFC 8949 §4.2.1,
// Core Deterministic Encoding): the encoders that write an envelope around
// bytes received (a Sig_structure, a canonical COSE_Sign1) use it, so that
// those bytes are never re-encoded.
func AppendHead(dst []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(dst, major|byte(n))
	case n <= math.MaxUint8:
		return append(dst, major|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, major|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, major|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, major|27), n)
	}
}

// AppendBytes appends b as a byte string: its shortest head, then b.
func AppendBytes(dst, b []byte) []byte {
	return append(AppendHead(dst, MajorBytes, uint64(len(b))), b...)
}
