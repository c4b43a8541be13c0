package govwire

import (
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
)

// decodeKid returns the member id a kid names. CCF's ccf_cose_sign1 writes
// kid as the bstr of the ASCII hex of SHA-256(certificate DER)
// (python/src/ccf/cose.py cert_fingerprint); some clients send the same text
// as a tstr. Both become the same string. The id must be 64 lowercase hex
// digits, the form CCF stores member ids in and compares them by: an
// uppercase kid would be an unknown member in CCF, so it is refused here
// rather than silently folded.
func decodeKid(raw cbor.RawMessage) (string, error) {
	var id string
	switch cbor.Major(raw) {
	case cbor.MajorBytes:
		b, err := cbor.DecodeBytes(raw)
		if err != nil {
			return "", err
		}
		id = string(b)
	case cbor.MajorText:
		s, err := cbor.DecodeText(raw)
		if err != nil {
			return "", err
		}
		id = s
	default:
		return "", errors.New("neither a byte string nor a text string")
	}
	if len(id) != 2*32 {
		return "", fmt.Errorf("%d characters, want 64 (hex SHA-256 of the member certificate)", len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("character %d is not a lowercase hex digit", i)
		}
	}
	return id, nil
}

// encodeSign1 returns the canonical tagged COSE_Sign1
// 18([protected, {}, payload, signature]). SignRequest writes it and
// ParseRequest demands it.
func encodeSign1(protected, payload, sig []byte) []byte {
	out := make([]byte, 0, 2+1+3*9+len(protected)+len(payload)+len(sig))
	out = append(out, cborTagSign1, 0x84)
	out = cbor.AppendBytes(out, protected)
	out = append(out, 0xa0)
	out = cbor.AppendBytes(out, payload)
	return cbor.AppendBytes(out, sig)
}

// encodeHeader encodes a protected header map with Core Deterministic
// Encoding (RFC 8949 §4.2.1), the order CCF's tools also produce.
func encodeHeader(hdr map[any]any) ([]byte, error) {
	b, err := cose.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("gov: encoding protected header: %v", err)
	}
	return b, nil
}
