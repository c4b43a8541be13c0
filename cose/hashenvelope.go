package cose

import (
	"bytes"
	"crypto"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
	gocose "github.com/veraison/go-cose"
)

// HashEnvelope holds the COSE Hash Envelope parameters (RFC 9995) of a
// statement whose payload is the digest of the artifact, not the artifact.
type HashEnvelope struct {
	PayloadHashAlg      gocose.Algorithm // 258: -16 SHA-256, -43 SHA-384, -44 SHA-512
	PreimageContentType any              // 259: string or int64; nil if absent
	PayloadLocation     string           // 260, "" if absent
}

// COSE hash algorithms (RFC 9054 §2) for PayloadHashAlg; go-cose does not
// name them.
const (
	AlgorithmSHA256 gocose.Algorithm = -16
	AlgorithmSHA384 gocose.Algorithm = -43
	AlgorithmSHA512 gocose.Algorithm = -44
)

// hashForAlg maps a COSE hash algorithm (RFC 9054) to its crypto.Hash.
func hashForAlg(a gocose.Algorithm) (crypto.Hash, bool) {
	switch a {
	case AlgorithmSHA256:
		return crypto.SHA256, true
	case AlgorithmSHA384:
		return crypto.SHA384, true
	case AlgorithmSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// parseHashEnvelope checks labels 258, 259 and 260 of protected header m.
func (s *Statement) parseHashEnvelope(m map[any]cbor.RawMessage) error {
	v, ok := m[labelPayloadHashAlg]
	if !ok {
		// RFC 9995: 259 and 260 describe the preimage of a hash envelope
		// and have no meaning without 258.
		if _, ok := m[labelPreimageCType]; ok {
			return fmt.Errorf("%w: preimage content type (259) without payload hash alg (258)", ErrBadHeader)
		}
		if _, ok := m[labelPayloadLocation]; ok {
			return fmt.Errorf("%w: payload location (260) without payload hash alg (258)", ErrBadHeader)
		}
		return nil
	}
	a, err := cbor.DecodeInt(v)
	if err != nil {
		return fmt.Errorf("%w: payload hash alg (258) must be an integer", ErrBadHeader)
	}
	h, ok := hashForAlg(gocose.Algorithm(a))
	if !ok {
		return fmt.Errorf("%w: payload hash alg (258) %d is not SHA-256, SHA-384 or SHA-512", ErrBadHeader, a)
	}
	// RFC 9995 §4: "Label 3 (content_type) MUST NOT be present in the
	// protected or unprotected headers"; 259 carries the preimage's type.
	if _, ok := m[labelContentType]; ok {
		return fmt.Errorf("%w: content type (3) must be absent in a hash envelope; use 259", ErrBadHeader)
	}
	if _, ok := s.Unprotected[labelContentType]; ok {
		return fmt.Errorf("%w: content type (3) must be absent in a hash envelope; use 259", ErrBadHeader)
	}
	he := &HashEnvelope{PayloadHashAlg: gocose.Algorithm(a)}
	if v, ok := m[labelPreimageCType]; ok {
		if he.PreimageContentType, err = decodeContentType(v); err != nil {
			return fmt.Errorf("%w: preimage content type (259): %v", ErrBadHeader, err)
		}
	}
	if v, ok := m[labelPayloadLocation]; ok {
		if cbor.Major(v) != cbor.MajorText || decMode.Unmarshal(v, &he.PayloadLocation) != nil {
			return fmt.Errorf("%w: payload location (260) must be text", ErrBadHeader)
		}
	}
	if s.Payload != nil && len(s.Payload) != h.Size() {
		return fmt.Errorf("%w: hash envelope payload is %d bytes, %v digests are %d", ErrBadHeader, len(s.Payload), h, h.Size())
	}
	s.HashEnvelope = he
	return nil
}

// VerifyPayload checks that payload is what the statement signed: for an
// embedded payload the bytes must be equal; for a hash envelope the digest
// of payload under PayloadHashAlg must equal the embedded digest.
func (s *Statement) VerifyPayload(payload []byte) error {
	if s == nil {
		return errors.New("cose: nil statement")
	}
	if s.Payload == nil {
		return fmt.Errorf("%w: no embedded payload to compare with", ErrDetachedPayload)
	}
	if s.HashEnvelope == nil {
		if !bytes.Equal(s.Payload, payload) {
			return fmt.Errorf("%w: payload bytes differ from the embedded payload", ErrPayloadMismatch)
		}
		return nil
	}
	h, ok := hashForAlg(s.HashEnvelope.PayloadHashAlg)
	if !ok {
		return fmt.Errorf("%w: unsupported payload hash alg %d", ErrBadHeader, int64(s.HashEnvelope.PayloadHashAlg))
	}
	d := h.New()
	d.Write(payload)
	if !bytes.Equal(d.Sum(nil), s.Payload) {
		return fmt.Errorf("%w: %v of payload differs from the hash envelope digest", ErrPayloadMismatch, h)
	}
	return nil
}
