// Package cose parses, verifies and makes SCITT Signed Statements (RFC 9943)
// and verifies COSE Receipts (RFC 9942), under a strict CBOR policy.
//
// # Signed statements
//
// A Signed Statement is a tagged COSE_Sign1 (RFC 9052 §4.2):
//
//	18([protected: bstr .cbor header_map, unprotected: header_map,
//	    payload: bstr / nil, signature: bstr])
//
// ParseStatement performs the structural checks, in this order, and returns
// the first failure as a wrapped sentinel from errors.go:
//
//  1. size ≤ ParseOptions.MaxSize (ErrTooLarge);
//  2. one well-formed CBOR item with no trailing bytes, no indefinite
//     lengths, and no duplicate map keys (ErrNotCOSE);
//  3. CBOR tag 18 (ErrUntagged) around an array of exactly 4 elements whose
//     types are bstr, map, bstr or nil, non-empty bstr; none of them may
//     carry a tag (ErrNotCOSE);
//  4. the protected bucket decodes to a map whose labels are ints or text,
//     each label at most once, and no label is in both buckets; known labels
//     have the types of RFC 9052 §3.1, RFC 9360 and RFC 9597 (ErrBadHeader);
//  5. alg (1) is present in the protected header and is one of ES256,
//     ES384, ES512, PS256, PS384, PS512, EdDSA (ErrAlgorithmNotAllowed);
//  6. CWT claims (15) with text iss (1) and sub (2) (ErrMissingCWTClaims);
//  7. kid (4) or x5chain (33) in the protected header (ErrMissingKey). The
//     x5chain certificates are parsed once, after the header type checks and
//     before this step, and an unparsable one is ErrBadChain;
//  8. crit (2) lists only labels that are present and that this package
//     understands (ErrBadHeader);
//  9. hash envelope (RFC 9995 COSE Hash Envelope): when 258 is present,
//     content type (3) is absent, 258 is SHA-256/384/512 and the payload is a
//     digest of that length; 259 and 260 appear only with 258 (ErrBadHeader);
//  10. the payload is embedded (ErrDetachedPayload).
//
// ParseSign1 performs steps 1–4 and the type checks of 5–9 only, for reading
// COSE_Sign1 messages outside the SCITT profile (test vectors, statements
// without sub, kid or understood crit); its result can be checked against a
// known key with (*Statement).VerifySignature.
//
// Nothing is re-encoded before verifying: the Sig_structure (RFC 9052 §4.4)
// is built over the protected bytes exactly as received. Parsing never panics.
//
// (*Statement).Verify resolves the issuer key (x5chain with a did:x509
// issuer, or a kid through VerifyOptions.IssuerKey), checks the algorithm
// against the key type and the allowed list, and verifies the signature.
// x5chain is leaf first; the last certificate must be self-signed and is the
// trust anchor (optionally pinned by VerifyOptions.TrustedCAs); every link is
// checked with the parent's key and CA flag.
//
// A ChainCache, passed as ParseOptions.Chains and VerifyOptions.Chains,
// shares parsed certificates and remembers chains whose signatures verified,
// so a statement from a known issuer costs one parse of its headers and one
// signature check.
//
// (*Statement).LeafEntry is SHA-256 of 18([protected, {}, payload,
// signature]): the Merkle leaf entry and the CCF claims digest.
//
// SignStatement makes statements that pass ParseStatement: all headers are
// protected, encoded with Core Deterministic Encoding.
//
// did:x509 identifiers (DIF did:x509 method, version 0) are parsed, matched
// against chains and made in didx509.go.
package cose
