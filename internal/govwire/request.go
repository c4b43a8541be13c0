package govwire

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// MsgType is the value of the ccf.gov.msg.type protected header: what a
// governance request asks for.
type MsgType string

// The message types CCF members send. CCF 6 also knows
// encrypted_recovery_share; Charter does not, so ParseRequest rejects it.
const (
	MsgProposal      MsgType = "proposal"
	MsgBallot        MsgType = "ballot"
	MsgWithdrawal    MsgType = "withdrawal"
	MsgAck           MsgType = "ack"
	MsgStateDigest   MsgType = "state_digest"
	MsgRecoveryShare MsgType = "recovery_share"
)

// needsProposalID reports whether t names an existing proposal: ballots and
// withdrawals must carry ccf.gov.msg.proposal_id, every other type must not.
func (t MsgType) needsProposalID() bool { return t == MsgBallot || t == MsgWithdrawal }

func (t MsgType) known() bool {
	switch t {
	case MsgProposal, MsgBallot, MsgWithdrawal, MsgAck, MsgStateDigest, MsgRecoveryShare:
		return true
	}
	return false
}

// Sentinel errors. Functions in this package wrap them with detail
// (fmt.Errorf("%w: ...", ErrX)); test with errors.Is. The HTTP layer maps
// each to one status.
var (
	// ErrMalformed: the request is not a governance COSE_Sign1 this package
	// accepts: too large, not CBOR, not tagged 18, not an array of four,
	// trailing bytes, not canonically encoded outside the protected header,
	// a non-empty unprotected header, a detached payload, an empty
	// signature, a protected header with a missing, unknown, duplicated or
	// wrongly typed label, a proposal_id where none belongs or none where
	// one is required; or a payload that is not the JSON its type demands.
	ErrMalformed = errors.New("gov: malformed governance request")
	// ErrWrongType: the request is well formed but of another message type
	// than the operation needs (Proposal() on a ballot, say).
	ErrWrongType = errors.New("gov: wrong governance message type")
	// ErrBadSignature: the signature does not verify with the member's key,
	// or the request's alg does not fit that key.
	ErrBadSignature = errors.New("gov: bad signature on governance request")
	// ErrStale: ccf.gov.msg.created_at is too far in the past or future.
	ErrStale = errors.New("gov: stale governance request")
	// ErrReplay: a request with the same Digest was already accepted. This
	// package defines it; the governance store that remembers digests
	// returns it.
	ErrReplay = errors.New("gov: replayed governance request")
	// ErrUnknownMember: the request's kid does not name the member whose
	// certificate it is checked against (or no certificate was given).
	ErrUnknownMember = errors.New("gov: unknown member")
)

// MaxRequestBytes bounds a governance request before any decoding. Proposals
// carry whole JS app bundles (set_js_app) and constitutions, which are
// hundreds of kilobytes in CCF's samples; 1 MiB leaves room for those while
// keeping one request's memory and hashing cost small.
const MaxRequestBytes = 1 << 20

// Protected header labels (RFC 9052 §3.1 and CCF's governance labels).
const (
	labelAlg         int64 = 1
	labelContentType int64 = 3
	labelKid         int64 = 4

	labelMsgType    = "ccf.gov.msg.type"
	labelCreatedAt  = "ccf.gov.msg.created_at"
	labelProposalID = "ccf.gov.msg.proposal_id"
)

// maxProposalIDLen bounds ccf.gov.msg.proposal_id. CCF's ids are 64 hex
// characters; the bound leaves room for other schemes without letting a
// ballot carry an arbitrary string into keys and logs.
const maxProposalIDLen = 128

// cborTagSign1 is the one-byte head of CBOR tag 18 (COSE_Sign1).
const cborTagSign1 = 0xd2

// Request is a parsed governance request. Parsing checks its shape only;
// Verify checks who signed it and CheckFresh when.
type Request struct {
	// Raw is the whole request as received.
	Raw []byte
	// RawProtected is the protected header bstr's content as received; the
	// signature covers these bytes, never a re-encoding.
	RawProtected []byte

	// Alg is the signature algorithm (label 1).
	Alg gocose.Algorithm
	// MemberID is the kid (label 4): lowercase hex SHA-256 of the member's
	// certificate DER. CCF sends it as a bstr of that ASCII text; a tstr is
	// accepted too.
	MemberID string

	Type       MsgType
	CreatedAt  int64  // seconds since the Unix epoch
	ProposalID string // only for ballots and withdrawals

	Payload   []byte // attached JSON payload, possibly empty
	Signature []byte

	// httpSig is set on requests that came HTTP-signed (httpsig.go), not
	// as a COSE_Sign1; RawProtected is then the signing string.
	httpSig *httpSignature
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseRequest decodes a governance request strictly. It checks:
//
//   - size: at most MaxRequestBytes;
//   - envelope: CBOR tag 18 around an array of exactly four: protected
//     (bstr), unprotected (an empty map), payload (bstr; nil, i.e. detached,
//     is refused), signature (non-empty bstr); nothing after it;
//   - canonical envelope: every length outside the protected header is
//     minimally encoded. With the empty unprotected map this makes Raw a
//     function of (protected, payload, signature), so nobody can re-wrap a
//     member's request into different bytes with the same signature and slip
//     past a replay check keyed on Digest;
//   - protected header: a map (duplicate labels refused) with exactly alg,
//     kid, ccf.gov.msg.type and ccf.gov.msg.created_at, ccf.gov.msg.proposal_id
//     for ballots and withdrawals only, and optionally content type (3);
//     anything else is refused;
//   - withdrawals and state digests: the payload is empty or {}.
//
// Every failure wraps ErrMalformed. ParseRequest never panics and does not
// retain b: Raw and the other byte fields are copies.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) > MaxRequestBytes {
		return nil, malformed("request of %d bytes exceeds %d", len(b), MaxRequestBytes)
	}
	if len(b) == 0 {
		return nil, malformed("empty request")
	}
	// RFC 9052 §4.2: COSE_Sign1_Tagged = #6.18(COSE_Sign1). CCF sends the
	// tag. The unprotected header is not signed: CCF's tools leave it
	// empty, and anything in it would be unauthenticated and would change
	// Raw (and Digest) without touching the signature.
	m, err := cose.DecodeSign1(b, cose.Sign1Options{EmptyUnprotected: true})
	if err != nil {
		return nil, malformed("%v", err)
	}
	if m.Payload == nil {
		return nil, malformed("payload is detached (nil); governance requests carry it")
	}
	protected, payload, sig := m.Protected, m.Payload, m.Signature
	if canon := encodeSign1(protected, payload, sig); string(canon) != string(b) {
		return nil, malformed("COSE_Sign1 envelope is not canonically encoded")
	}

	r := &Request{
		Raw:          append([]byte(nil), b...),
		RawProtected: append([]byte{}, protected...),
		Payload:      append([]byte{}, payload...),
		Signature:    append([]byte(nil), sig...),
	}
	if err := r.parseProtected(protected); err != nil {
		return nil, err
	}
	if r.Type == MsgWithdrawal || r.Type == MsgStateDigest {
		if err := checkEmptyPayload(r.Payload); err != nil {
			return nil, malformed("%s payload: %v", r.Type, err)
		}
	}
	return r, nil
}

// parseProtected fills Alg, MemberID, Type, CreatedAt and ProposalID from the
// protected header bytes.
func (r *Request) parseProtected(protected []byte) error {
	if len(protected) == 0 {
		// RFC 9052 §3: a zero-length bstr is an empty header map. It lacks
		// alg, so say that rather than "not a map".
		return malformed("protected header: missing alg (1)")
	}
	var hdr map[any]cbor.RawMessage
	if err := cose.Unmarshal(protected, &hdr); err != nil {
		return malformed("protected header: %v", err)
	}
	for k := range hdr {
		switch k := k.(type) {
		case int64:
			if k != labelAlg && k != labelKid && k != labelContentType {
				return malformed("protected header: unexpected label %d", k)
			}
		case string:
			if k != labelMsgType && k != labelCreatedAt && k != labelProposalID {
				return malformed("protected header: unexpected label %q", k)
			}
		default:
			return malformed("protected header: label of type %T", k)
		}
	}

	raw, ok := hdr[labelAlg]
	if !ok {
		return malformed("protected header: missing alg (1)")
	}
	alg, err := cbor.DecodeInt(raw)
	if err != nil {
		return malformed("protected header: alg (1): %v", err)
	}
	r.Alg = gocose.Algorithm(alg)
	if !cose.AlgorithmSupported(r.Alg) {
		return malformed("protected header: alg (1) %d is not ES256, ES384, ES512, EdDSA or PS256/384/512", alg)
	}

	raw, ok = hdr[labelKid]
	if !ok {
		return malformed("protected header: missing kid (4)")
	}
	if r.MemberID, err = decodeKid(raw); err != nil {
		return malformed("protected header: kid (4): %v", err)
	}

	raw, ok = hdr[labelMsgType]
	if !ok {
		return malformed("protected header: missing %s", labelMsgType)
	}
	t, err := cbor.DecodeText(raw)
	if err != nil {
		return malformed("protected header: %s: %v", labelMsgType, err)
	}
	r.Type = MsgType(t)
	if !r.Type.known() {
		return malformed("protected header: %s %q is not a known message type", labelMsgType, t)
	}

	raw, ok = hdr[labelCreatedAt]
	if !ok {
		return malformed("protected header: missing %s", labelCreatedAt)
	}
	created, err := cbor.DecodeUint(raw)
	if err != nil {
		return malformed("protected header: %s: %v", labelCreatedAt, err)
	}
	if created > math.MaxInt64 {
		return malformed("protected header: %s %d overflows int64", labelCreatedAt, created)
	}
	r.CreatedAt = int64(created)

	raw, ok = hdr[labelProposalID]
	switch {
	case ok && !r.Type.needsProposalID():
		return malformed("protected header: %s is not allowed on %s requests; only ballots and withdrawals name a proposal", labelProposalID, r.Type)
	case !ok && r.Type.needsProposalID():
		return malformed("protected header: missing %s, required on %s requests", labelProposalID, r.Type)
	case ok:
		id, err := cbor.DecodeText(raw)
		if err != nil {
			return malformed("protected header: %s: %v", labelProposalID, err)
		}
		if err := checkProposalID(id); err != nil {
			return malformed("protected header: %s: %v", labelProposalID, err)
		}
		r.ProposalID = id
	}

	// RFC 9052 §3.1: content type is a uint or a tstr. It is tolerated
	// because generic COSE tools add it; the payload is JSON regardless.
	if raw, ok := hdr[labelContentType]; ok {
		if len(raw) == 0 || (raw[0]>>5 != 0 && raw[0]>>5 != 3) {
			return malformed("protected header: content type (3) is neither a uint nor a text string")
		}
		var v any
		if err := cose.Unmarshal(raw, &v); err != nil {
			return malformed("protected header: content type (3): %v", err)
		}
	}
	return nil
}

// checkProposalID allows 1..maxProposalIDLen characters of [0-9A-Za-z._:-]:
// enough for CCF's hex ids and other printable schemes, nothing that needs
// escaping in a URL path, a key or a log line.
func checkProposalID(id string) error {
	if id == "" || len(id) > maxProposalIDLen {
		return fmt.Errorf("length %d, want 1..%d", len(id), maxProposalIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '.', c == '_', c == ':', c == '-':
		default:
			return fmt.Errorf("byte 0x%02x at %d is not in [0-9A-Za-z._:-]", c, i)
		}
	}
	return nil
}

// Digest is SHA-256 of Raw, the request as received, as CCF keys its
// window of recent proposals. ParseRequest refuses non-canonical envelopes
// and unprotected headers, so the bytes around the signed content cannot be
// varied. The signature itself can: ECDSA signatures are malleable ((r, s)
// and (r, n−s) both verify) and are randomized, so a replay check on Digest
// alone stops resubmission of the same bytes, not of the same signed
// content; pair it with CheckFresh and per-type rules (one ballot per
// member and proposal, acks bound to the current state digest).
func (r *Request) Digest() [32]byte {
	if r == nil {
		return sha256.Sum256(nil)
	}
	return sha256.Sum256(r.Raw)
}

// maxSaneUnix bounds created_at for time arithmetic: time.Unix overflows
// its internal representation far below math.MaxInt64 seconds. Anything
// beyond is in the far future and therefore stale for any maxAge a
// time.Duration can hold (≈292 years).
const maxSaneUnix = 1 << 40

// CheckFresh returns nil if created_at is within maxAge of now in either
// direction, inclusive: a request exactly maxAge old, or exactly maxAge
// ahead (clock skew), is fresh; one second more is ErrStale. A negative
// maxAge makes every request stale.
func (r *Request) CheckFresh(now time.Time, maxAge time.Duration) error {
	if r == nil {
		return fmt.Errorf("%w: nil request", ErrStale)
	}
	if maxAge < 0 {
		return fmt.Errorf("%w: negative maximum age %v", ErrStale, maxAge)
	}
	if r.CreatedAt < 0 || r.CreatedAt > maxSaneUnix {
		return fmt.Errorf("%w: created_at %d is out of range", ErrStale, r.CreatedAt)
	}
	created := time.Unix(r.CreatedAt, 0)
	if age := now.Sub(created); age > maxAge {
		return fmt.Errorf("%w: created %v ago, more than %v", ErrStale, age, maxAge)
	}
	if ahead := created.Sub(now); ahead > maxAge {
		return fmt.Errorf("%w: created %v in the future, more than %v", ErrStale, ahead, maxAge)
	}
	return nil
}
