// Package govwire owns governance's wire format: the COSE_Sign1 requests
// members sign (their protected headers, JSON payloads, signing, parsing and
// verification), the names of the governed maps and the records stored in
// them, and member ids. It imports only the formats (cbor, cose), so the
// server (internal/gov) and the CLI (cmd/charter) build and read requests
// with one piece of code without the CLI linking the ledger.
//
// # Governance requests
//
// A member sends each governance request as a tagged COSE_Sign1
// (RFC 9052 §4.2) with the payload attached, signed with the key of its
// member certificate, exactly as CCF's ccf_cose_sign1 writes it:
//
//	18([
//	  << {
//	    1: alg,                              ; ES256/384/512, EdDSA, PS256/384/512
//	    4: h'<member id>',                   ; ASCII hex SHA-256 of the cert DER (tstr accepted)
//	    "ccf.gov.msg.type": tstr,            ; proposal, ballot, withdrawal, ack,
//	                                         ; state_digest, recovery_share
//	    "ccf.gov.msg.created_at": uint,      ; seconds since the Unix epoch
//	    ? "ccf.gov.msg.proposal_id": tstr,   ; ballots and withdrawals only, and required there
//	    ? 3: tstr / uint,                    ; content type, tolerated and ignored
//	  } >>,
//	  {},                                    ; no unprotected headers
//	  bstr,                                  ; JSON payload
//	  bstr,                                  ; signature
//	])
//
// ParseRequest checks that shape and nothing else: any other label, a
// duplicated one, a value of the wrong CBOR type, a detached payload, bytes
// after the message or a non-minimal length outside the protected header is
// ErrMalformed. (*Request).Verify checks the signature with the member's
// certificate over the protected bytes as received; (*Request).CheckFresh
// checks created_at against a clock; (*Request).Digest keys replay
// detection, as CCF's window of recent proposals does. The payload
// accessors (Proposal, Ballot, Ack) decode the JSON strictly.
package govwire
