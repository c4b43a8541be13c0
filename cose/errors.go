package cose

import "errors"

// Sentinel errors for signed statements. Each distinct failure has its own
// sentinel so that the HTTP layer (registry/) can map it to one
// problem-details title and status. Functions in this package wrap them with
// detail (fmt.Errorf("%w: ...", ErrX)); test with errors.Is.
var (
	// ErrTooLarge: the statement is bigger than ParseOptions.MaxSize.
	ErrTooLarge = errors.New("cose: statement too large")
	// ErrNotCOSE: not well-formed CBOR, not a COSE_Sign1 array of 4 with the
	// right element types, truncated, or followed by trailing bytes.
	ErrNotCOSE = errors.New("cose: not a COSE_Sign1 message")
	// ErrUntagged: a COSE_Sign1 array without CBOR tag 18 (or under another
	// tag). SCITT requires the tag.
	ErrUntagged = errors.New("cose: COSE_Sign1 without tag 18")
	// ErrBadHeader: a header is malformed: the protected bucket is not a
	// map, a label is not an int or text, a label is duplicated, a value has
	// the wrong type, crit lists labels that are absent or not understood, or
	// the hash-envelope rules are broken.
	ErrBadHeader = errors.New("cose: malformed header")
	// ErrMissingCWTClaims: no CWT claims (label 15) in the protected header,
	// or its iss (1) or sub (2) is missing or not text.
	ErrMissingCWTClaims = errors.New("cose: missing CWT claims")
	// ErrAlgorithmNotAllowed: alg (label 1) is absent, unknown, not allowed,
	// or does not fit the key.
	ErrAlgorithmNotAllowed = errors.New("cose: algorithm not allowed")
	// ErrMissingKey: neither kid (label 4) nor x5chain (label 33) is in the
	// protected header.
	ErrMissingKey = errors.New("cose: no issuer key identifier")
	// ErrBadChain: the x5chain does not parse, does not verify from leaf to a
	// self-signed root, is outside its validity period, or its root is not a
	// trusted CA.
	ErrBadChain = errors.New("cose: bad certificate chain")
	// ErrIssuerMismatch: the did:x509 issuer does not match the chain.
	ErrIssuerMismatch = errors.New("cose: issuer does not match certificate chain")
	// ErrUnknownIssuerKey: the kid cannot be resolved to a key.
	ErrUnknownIssuerKey = errors.New("cose: unknown issuer key")
	// ErrBadSignature: the signature does not verify.
	ErrBadSignature = errors.New("cose: signature verification failed")
	// ErrDetachedPayload: the payload is nil where an embedded payload is
	// required.
	ErrDetachedPayload = errors.New("cose: detached payload")
	// ErrPayloadMismatch: VerifyPayload was given bytes that differ from the
	// embedded payload, or whose hash differs from the hash envelope.
	ErrPayloadMismatch = errors.New("cose: payload mismatch")
)
