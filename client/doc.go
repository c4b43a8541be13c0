// Package client is the Go client of a Charter transparency service and its
// offline verifier.
//
// # Offline verification
//
// A transparent statement is a SCITT signed statement with one or more COSE
// Receipts (RFC 9942) in unprotected header 394. VerifyTransparentStatement
// checks it with nothing but the service's public keys, and reports each
// check it made:
//
//   - "statement signature": the statement parses under the SCITT profile and
//     its signature verifies with its issuer's key (x5chain with a did:x509
//     issuer, or a kid resolved by cose.VerifyOptions.IssuerKey);
//   - "receipt N": receipt N (1-based, in header order) proves the
//     statement's leaf entry — SHA-256 of the statement with an empty
//     unprotected header — under a tree root signed by one of the service
//     keys (vds 1, RFC9162_SHA256, and vds 2, CCF receipts);
//   - "payload", when the caller supplies the payload: it is the one the
//     statement signed (equal bytes, or for a hash envelope the digest).
//
// Every receipt must verify; a transparent statement without receipts fails.
// Verification is pure: nothing is fetched, and the verdict depends only on
// the bytes and keys given. ParseServiceKeys reads the key formats services
// publish (COSE_KeySet, JWKS, CCF trust store, PEM).
package client
