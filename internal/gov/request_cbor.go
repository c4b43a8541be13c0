package gov

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
)

// CBOR major types (RFC 8949 §3.1), as the top three bits of a head byte.
const (
	majorBytes = 2
	majorText  = 3
)

func major(raw cbor.RawMessage) int {
	if len(raw) == 0 {
		return -1
	}
	return int(raw[0] >> 5)
}

// decodeKid returns the member id a kid names. CCF's ccf_cose_sign1 writes
// kid as the bstr of the ASCII hex of SHA-256(certificate DER)
// (python/src/ccf/cose.py cert_fingerprint); some clients send the same text
// as a tstr. Both become the same string. The id must be 64 lowercase hex
// digits, the form CCF stores member ids in and compares them by: an
// uppercase kid would be an unknown member in CCF, so it is refused here
// rather than silently folded.
func decodeKid(raw cbor.RawMessage) (string, error) {
	var id string
	switch major(raw) {
	case majorBytes:
		b, err := cbor.DecodeBytes(raw)
		if err != nil {
			return "", err
		}
		id = string(b)
	case majorText:
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

// appendHead appends a CBOR head of major type m and argument n in its
// shortest form (RFC 8949 §4.2.1).
func appendHead(dst []byte, m byte, n uint64) []byte {
	m <<= 5
	switch {
	case n < 24:
		return append(dst, m|byte(n))
	case n <= 0xff:
		return append(dst, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), n)
}

func appendBstr(dst, b []byte) []byte {
	return append(appendHead(dst, majorBytes, uint64(len(b))), b...)
}

// encodeSign1 returns the canonical tagged COSE_Sign1
// 18([protected, {}, payload, signature]). SignRequest writes it and
// ParseRequest demands it.
func encodeSign1(protected, payload, sig []byte) []byte {
	out := make([]byte, 0, 2+1+3*9+len(protected)+len(payload)+len(sig))
	out = append(out, cborTagSign1, 0x84)
	out = appendBstr(out, protected)
	out = append(out, 0xa0)
	out = appendBstr(out, payload)
	return appendBstr(out, sig)
}

// sigStructure is the Sig_structure of RFC 9052 §4.4 for a COSE_Sign1
// without external AAD: ["Signature1", body_protected, empty bstr, payload]. It is
// built from the protected bytes as received, never from a re-encoding.
func sigStructure(protected, payload []byte) []byte {
	const context = "Signature1"
	out := make([]byte, 0, 1+1+len(context)+9+len(protected)+1+9+len(payload))
	out = append(out, 0x84)
	out = appendHead(out, majorText, uint64(len(context)))
	out = append(out, context...)
	out = appendBstr(out, protected)
	out = appendBstr(out, nil)
	return appendBstr(out, payload)
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
