package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/charterlog/charter/cbor"
	gocose "github.com/veraison/go-cose"
)

// SignOptions describes a statement to sign.
type SignOptions struct {
	// Alg is the signature algorithm; 0 means the default for the key
	// (signAlgForKey).
	Alg gocose.Algorithm
	// Issuer and Subject are the CWT iss and sub; both are required.
	Issuer, Subject string
	// ContentType is the payload's media type (label 3), or with
	// HashEnvelope the preimage content type (label 259). Optional.
	ContentType string
	// X5Chain is the DER chain, leaf first (label 33). X5Chain or Kid is
	// required.
	X5Chain [][]byte
	// Kid identifies a key registered with the service (label 4).
	Kid []byte
	// HashEnvelope signs the digest of the payload instead of the payload
	// (RFC 9995): label 258 = PayloadHashAlg, 259 = ContentType, 260 =
	// PayloadLocation, and no label 3.
	HashEnvelope bool
	// PayloadHashAlg is the hash-envelope digest: AlgorithmSHA256 (default),
	// AlgorithmSHA384 or AlgorithmSHA512.
	PayloadHashAlg gocose.Algorithm
	// PayloadLocation is where the preimage can be fetched (label 260);
	// only with HashEnvelope.
	PayloadLocation string
	// IssuedAt becomes the CWT iat; zero means time.Now().
	IssuedAt time.Time
}

// signAlgForKey returns the algorithm this package uses for a key: ES256,
// ES384 or ES512 by curve, PS256 for RSA, EdDSA for Ed25519.
func signAlgForKey(pub crypto.PublicKey) (gocose.Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg, ok := CurveAlgorithm(k.Curve); ok {
			return alg, nil
		}
		return 0, fmt.Errorf("%w: unsupported ECDSA curve %s", ErrAlgorithmNotAllowed, k.Curve.Params().Name)
	case *rsa.PublicKey:
		return gocose.AlgorithmPS256, nil
	case ed25519.PublicKey:
		return gocose.AlgorithmEdDSA, nil
	}
	return 0, fmt.Errorf("%w: unsupported key type %T", ErrAlgorithmNotAllowed, pub)
}

// SignStatement signs payload as a SCITT signed statement and returns the
// tagged COSE_Sign1. All headers are in the protected header, encoded with
// Core Deterministic Encoding; the unprotected header is empty. The result
// passes ParseStatement and, with the matching trust, Verify.
func SignStatement(rand io.Reader, signer crypto.Signer, opts SignOptions, payload []byte) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("cose: nil signer")
	}
	if opts.Issuer == "" || opts.Subject == "" {
		return nil, fmt.Errorf("%w: issuer and subject are required", ErrMissingCWTClaims)
	}
	if len(opts.X5Chain) == 0 && len(opts.Kid) == 0 {
		return nil, fmt.Errorf("%w: set X5Chain or Kid", ErrMissingKey)
	}
	if payload == nil {
		payload = []byte{}
	}
	alg := opts.Alg
	if alg == 0 {
		var err error
		if alg, err = signAlgForKey(signer.Public()); err != nil {
			return nil, err
		}
	}
	if err := CheckAlgorithmKey(alg, signer.Public()); err != nil {
		return nil, err
	}
	iat := opts.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	claims := map[int64]any{claimIss: opts.Issuer, claimSub: opts.Subject, claimIat: iat.Unix()}
	hdr := map[int64]any{labelAlg: int64(alg), labelCWTClaims: claims}
	if len(opts.Kid) > 0 {
		hdr[labelKid] = opts.Kid
	}
	switch len(opts.X5Chain) {
	case 0:
	case 1:
		// RFC 9360 §2: a single certificate is a bstr, not an array.
		hdr[labelX5Chain] = opts.X5Chain[0]
	default:
		hdr[labelX5Chain] = opts.X5Chain
	}
	if opts.HashEnvelope {
		ha := opts.PayloadHashAlg
		if ha == 0 {
			ha = AlgorithmSHA256
		}
		h, ok := hashForAlg(ha)
		if !ok {
			return nil, fmt.Errorf("%w: payload hash alg %d is not SHA-256, SHA-384 or SHA-512", ErrBadHeader, int64(ha))
		}
		d := h.New()
		d.Write(payload)
		payload = d.Sum(nil)
		hdr[labelPayloadHashAlg] = int64(ha)
		if opts.ContentType != "" {
			hdr[labelPreimageCType] = opts.ContentType
		}
		if opts.PayloadLocation != "" {
			hdr[labelPayloadLocation] = opts.PayloadLocation
		}
	} else {
		if opts.PayloadLocation != "" {
			return nil, fmt.Errorf("%w: a payload location needs a hash envelope", ErrBadHeader)
		}
		if opts.ContentType != "" {
			hdr[labelContentType] = opts.ContentType
		}
	}
	protected, err := cbor.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("cose: encoding protected header: %w", err)
	}
	s, err := gocose.NewSigner(alg, signer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAlgorithmNotAllowed, err)
	}
	sig, err := s.Sign(rand, SigStructure(protected, payload))
	if err != nil {
		return nil, fmt.Errorf("cose: signing: %w", err)
	}
	out, err := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{protected, map[int64]any{}, payload, sig}})
	if err != nil {
		return nil, fmt.Errorf("cose: encoding statement: %w", err)
	}
	return out, nil
}
