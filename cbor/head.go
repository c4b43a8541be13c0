package cbor

import (
	"encoding/binary"
	"errors"
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

// ReadHead reads the head of the item b starts with: its major type (as
// AppendHead takes it), its argument and the head's length. ok is false
// for a truncated head, an indefinite length or a reserved argument.
// Nothing after the head is read.
func ReadHead(b []byte) (major byte, arg uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, 0, false
	}
	major, ai := b[0]&0xe0, b[0]&0x1f
	switch {
	case ai < 24:
		return major, uint64(ai), 1, true
	case ai == 24 && len(b) >= 2:
		return major, uint64(b[1]), 2, true
	case ai == 25 && len(b) >= 3:
		return major, uint64(binary.BigEndian.Uint16(b[1:])), 3, true
	case ai == 26 && len(b) >= 5:
		return major, uint64(binary.BigEndian.Uint32(b[1:])), 5, true
	case ai == 27 && len(b) >= 9:
		return major, binary.BigEndian.Uint64(b[1:]), 9, true
	}
	return 0, 0, 0, false
}

// Split returns the first item of b and the bytes after it, as sub-slices
// of b: nothing is copied, so the item aliases b. It refuses a truncated
// item and indefinite lengths but checks nothing else (not UTF-8, not
// duplicate keys, not nesting): call it on bytes Wellformed accepted,
// which bounds them under the policy.
func Split(b []byte) (item, rest []byte, err error) {
	off, pending := 0, uint64(1)
	for pending > 0 {
		major, arg, n, ok := ReadHead(b[off:])
		if !ok {
			return nil, nil, errors.New("cbor: truncated item or indefinite length")
		}
		off += n
		pending--
		left := uint64(len(b) - off)
		switch major {
		case MajorBytes, MajorText:
			if arg > left {
				return nil, nil, errors.New("cbor: truncated string")
			}
			off += int(arg)
		case MajorArray, MajorMap:
			if major == MajorMap {
				if arg > left/2 {
					return nil, nil, errors.New("cbor: truncated map")
				}
				arg *= 2
			}
			// Every item takes at least a byte: more than are left is a
			// truncated (or hostile) length.
			if arg > left {
				return nil, nil, errors.New("cbor: truncated array")
			}
			pending += arg
		case MajorTag:
			pending++
		}
	}
	return b[:off], b[off:], nil
}

// BytesContent returns the content of the byte string raw (exactly one
// item) as a sub-slice of raw, without copying; an empty string is an
// empty, non-nil slice, as DecodeBytes gives it.
func BytesContent(raw []byte) ([]byte, error) {
	major, arg, n, ok := ReadHead(raw)
	if !ok || major != MajorBytes {
		return nil, errors.New("not a byte string")
	}
	if uint64(len(raw)-n) != arg {
		return nil, errors.New("byte string length does not match its item")
	}
	return raw[n:len(raw):len(raw)], nil
}
