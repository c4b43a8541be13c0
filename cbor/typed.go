package cbor

import "errors"

// Major types (RFC 8949 §3.1), as the top three bits of an item's first
// byte.
const (
	MajorUint  byte = 0 << 5
	MajorNint  byte = 1 << 5
	MajorBytes byte = 2 << 5
	MajorText  byte = 3 << 5
	MajorArray byte = 4 << 5
	MajorMap   byte = 5 << 5
	MajorTag   byte = 6 << 5
)

// Major returns the major type of the item raw begins with, 0xff for none.
func Major(raw []byte) byte {
	if len(raw) == 0 {
		return 0xff
	}
	return raw[0] & 0xe0
}

// Typed decoders for one field of a format kept raw (a RawMessage): each
// checks the major type first, because the library converts where a field
// has one type (a text string into []byte, nil into a zero value, a tagged
// value into its content), then decodes under the policy.

// DecodeBytes decodes a byte string. An empty one is an empty slice, not
// nil.
func DecodeBytes(raw []byte) ([]byte, error) {
	if Major(raw) != MajorBytes {
		return nil, errors.New("not a byte string")
	}
	var b []byte
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// DecodeText decodes a text string.
func DecodeText(raw []byte) (string, error) {
	if Major(raw) != MajorText {
		return "", errors.New("not a text string")
	}
	var s string
	err := decMode.Unmarshal(raw, &s)
	return s, err
}

// DecodeInt decodes an integer that fits int64, negative or not.
func DecodeInt(raw []byte) (int64, error) {
	if m := Major(raw); m != MajorUint && m != MajorNint {
		return 0, errors.New("not an integer")
	}
	var n int64
	if err := decMode.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	return n, nil
}

// DecodeUint decodes an unsigned integer: no negative number, no float, no
// epoch-time tag.
func DecodeUint(raw []byte) (uint64, error) {
	if Major(raw) != MajorUint {
		return 0, errors.New("not an unsigned integer")
	}
	var n uint64
	err := decMode.Unmarshal(raw, &n)
	return n, err
}

// DecodeArray decodes an array into its elements, each raw.
func DecodeArray(raw []byte) ([]RawMessage, error) {
	if Major(raw) != MajorArray {
		return nil, errors.New("not an array")
	}
	var a []RawMessage
	if err := decMode.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return a, nil
}
