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

// decodeAs decodes raw into a T if it is of major type want.
func decodeAs[T any](raw []byte, want byte, what string) (T, error) {
	var v T
	if Major(raw) != want {
		return v, errors.New("not " + what)
	}
	err := decMode.Unmarshal(raw, &v)
	return v, err
}

// DecodeBytes decodes a byte string. An empty one is an empty slice, not
// nil.
func DecodeBytes(raw []byte) ([]byte, error) {
	b, err := decodeAs[[]byte](raw, MajorBytes, "a byte string")
	if err == nil && b == nil {
		b = []byte{}
	}
	return b, err
}

// DecodeText decodes a text string.
func DecodeText(raw []byte) (string, error) {
	return decodeAs[string](raw, MajorText, "a text string")
}

// DecodeInt decodes an integer that fits int64, negative or not.
func DecodeInt(raw []byte) (int64, error) {
	if Major(raw) == MajorNint {
		return decodeAs[int64](raw, MajorNint, "an integer")
	}
	return decodeAs[int64](raw, MajorUint, "an integer")
}

// DecodeUint decodes an unsigned integer: no negative number, no float, no
// epoch-time tag.
func DecodeUint(raw []byte) (uint64, error) {
	return decodeAs[uint64](raw, MajorUint, "an unsigned integer")
}

// DecodeArray decodes an array into its elements, each raw.
func DecodeArray(raw []byte) ([]RawMessage, error) {
	return decodeAs[[]RawMessage](raw, MajorArray, "an array")
}
