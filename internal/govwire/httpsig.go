package govwire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// HTTP-signed governance requests, as CCF ≤ 3's scurl.sh makes them
// (draft-cavage-http-signatures-12 with algorithm hs2019):
//
//	Digest: SHA-256=<base64 of SHA-256(body)>
//	Authorization: Signature keyId="<hex>",algorithm="hs2019",
//	    headers="(request-target) digest content-length",signature="<base64 DER>"
//
// The signature is ECDSA over SHA-384 of the signing string, whatever the
// curve: scurl.sh runs `openssl dgst -sha384 -sign` for every key, so a
// P-256 member key signs a SHA-384 digest too (ECDSA truncates it to the
// curve's size). The signing string is one "name: value" line per entry of
// headers, joined by "\n" with none after the last; (request-target) is
// the method in lower case, a space, and the path and query as sent.
//
// keyId is the hex SHA-256 of the member certificate's PEM file as written,
// not the member id. The server holds each member's PEM as governance
// recorded it, which need not be byte for byte the member's file, so the
// member is found by, in order: keyId = SHA-256 of one of the PEM forms
// below (pemForms), keyId = the member id (the certificate's SHA-256
// fingerprint, which a client may send instead), and last the member whose
// key verifies the signature, tried over a bounded number of members
// (internal/gov).
//
// Replay: the signature covers no time, so no freshness window can bound
// it, and Charter writes every accepted request into the public ledger,
// where anyone may read it and send it again. Each member's signing string
// (which covers the method, the target and, through the digest, the body)
// is therefore accepted once, ever: MapHTTPSignedRequests remembers it.

// Errors of HTTP-signed requests, each its own answer at the edge.
var (
	// ErrHTTPSigMalformed: the Authorization header is not a signature this
	// package accepts (its syntax, an unknown or repeated parameter, an
	// algorithm other than hs2019, a bound exceeded, a signature that is
	// not base64), or the Digest or Content-Length header is not well
	// formed, or the body is not UTF-8 JSON text.
	ErrHTTPSigMalformed = errors.New("gov: malformed HTTP signature")
	// ErrHTTPSigMissingHeader: the signature does not cover (request-target),
	// digest and content-length, or a header it covers is not in the
	// request (or is there more than once).
	ErrHTTPSigMissingHeader = errors.New("gov: a header the HTTP signature needs is missing")
	// ErrDigestMismatch: the Digest header, or Content-Length, does not
	// match the body received.
	ErrDigestMismatch = errors.New("gov: the Digest header does not match the body")
	// ErrUnknownKeyID: keyId names no member, and no member's key verifies
	// the signature.
	ErrUnknownKeyID = errors.New("gov: the HTTP signature's keyId names no member")
)

// MapHTTPSignedRequests remembers every accepted HTTP-signed request, for
// ever: "<member id>:<hex SHA-256 of the signing string>" → message type.
const MapHTTPSignedRequests = "public:ccf.gov.http_signed_requests"

// Bounds on what an HTTP signature's headers may hold, checked before any
// parsing. A P-384 DER signature is at most 104 bytes (140 in base64); a
// keyId is 64 hex digits.
const (
	maxAuthorizationBytes = 2048
	maxKeyIDLen           = 128
	maxSignatureB64       = 256
	maxSignedHeaders      = 8
	maxSignedHeaderValue  = 1024
)

// requiredSignedHeaders are the entries scurl.sh signs; a signature over
// fewer would leave the method, the path or the body unsigned.
var requiredSignedHeaders = []string{"(request-target)", "digest", "content-length"}

// HTTPMessage is an HTTP request as the edge received it: what an HTTP
// signature covers. The package reads no net/http type.
type HTTPMessage struct {
	Method string              // as sent, e.g. "POST"
	Target string              // the path and query as sent (the request URI)
	Header map[string][]string // net/http.Header: canonical keys
	Body   []byte
}

func (m HTTPMessage) header(name string) ([]string, bool) {
	for k, v := range m.Header {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// httpSignature is the part of a Request that only HTTP-signed requests
// have.
type httpSignature struct {
	keyID         string
	signingString string
	sig           []byte // ASN.1 DER ECDSA signature
}

// HTTPSigned reports whether r came with an HTTP signature rather than as
// a COSE_Sign1.
func (r *Request) HTTPSigned() bool { return r != nil && r.httpSig != nil }

// httpClaims is what the ledger keeps of an HTTP-signed request (Raw): all
// an auditor needs to verify it again with the member's certificate.
type httpClaims struct {
	HTTPSignature struct {
		KeyID         string `json:"key_id"`
		MemberID      string `json:"member_id"`
		SigningString string `json:"signing_string"`
		Signature     string `json:"signature"` // base64 DER, ECDSA over SHA-384
	} `json:"http_signature"`
	Type       MsgType `json:"type"`
	ProposalID string  `json:"proposal_id,omitempty"`
	Body       string  `json:"body"`
}

func sigMalformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrHTTPSigMalformed, fmt.Sprintf(format, args...))
}

// IsHTTPSigned reports whether an Authorization header value carries an
// HTTP signature (scheme "Signature"), so that the edge can choose the
// parser before reading anything else.
func IsHTTPSigned(authorization string) bool {
	scheme, _, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	return strings.EqualFold(scheme, "Signature")
}

// ParseHTTPSigned reads an HTTP-signed governance request of type t (the
// route decides it; proposalID is the route's, for ballots and
// withdrawals). It checks the Authorization header's syntax and bounds,
// that the signature covers requiredSignedHeaders, that every header it
// covers is in msg once, that Content-Length and Digest match the body, and
// the body as ParseRequest does a COSE payload. The member is not known
// yet: the server finds it (the keyId rules above) and sets it with
// SetHTTPMember; the signature is verified, with the member's current
// certificate, when the request is executed (Verify).
func ParseHTTPSigned(msg HTTPMessage, t MsgType, proposalID string) (*Request, error) {
	if !t.known() {
		return nil, fmt.Errorf("%w: unknown message type %q", ErrMalformed, t)
	}
	if t.needsProposalID() {
		if err := checkProposalID(proposalID); err != nil {
			return nil, malformed("proposal id: %v", err)
		}
	} else if proposalID != "" {
		return nil, malformed("a %s names no proposal", t)
	}
	if len(msg.Body) > MaxRequestBytes {
		return nil, malformed("request of %d bytes exceeds %d", len(msg.Body), MaxRequestBytes)
	}
	auth, ok := msg.header("Authorization")
	if !ok || len(auth) != 1 {
		return nil, fmt.Errorf("%w: one Authorization header, got %d", ErrHTTPSigMissingHeader, len(auth))
	}
	p, err := parseSignatureParams(auth[0])
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(p["signature"])
	if err != nil || len(sig) == 0 {
		return nil, sigMalformed("signature is not base64 of a DER signature")
	}
	names := strings.Split(p["headers"], " ")
	if len(names) > maxSignedHeaders {
		return nil, sigMalformed("headers lists %d entries, at most %d", len(names), maxSignedHeaders)
	}
	seen := map[string]bool{}
	lines := make([]string, 0, len(names))
	for _, n := range names {
		if n == "" || n != strings.ToLower(n) || seen[n] {
			return nil, sigMalformed("headers %q: entries are distinct lower-case names separated by one space", p["headers"])
		}
		seen[n] = true
		if n == "(request-target)" {
			lines = append(lines, n+": "+strings.ToLower(msg.Method)+" "+msg.Target)
			continue
		}
		if strings.HasPrefix(n, "(") {
			return nil, sigMalformed("headers: %s is not supported; Charter signs (request-target) and real headers only", n)
		}
		v, ok := msg.header(n)
		if !ok || len(v) != 1 {
			return nil, fmt.Errorf("%w: the signature covers %s, which the request carries %d times (want once)", ErrHTTPSigMissingHeader, n, len(v))
		}
		if len(v[0]) > maxSignedHeaderValue {
			return nil, sigMalformed("header %s of %d bytes exceeds %d", n, len(v[0]), maxSignedHeaderValue)
		}
		lines = append(lines, n+": "+v[0])
	}
	for _, n := range requiredSignedHeaders {
		if !seen[n] {
			return nil, fmt.Errorf("%w: the signature must cover %q; headers is %q", ErrHTTPSigMissingHeader, strings.Join(requiredSignedHeaders, " "), p["headers"])
		}
	}
	cl, _ := msg.header("Content-Length")
	if n, err := strconv.ParseUint(cl[0], 10, 31); err != nil {
		return nil, sigMalformed("content-length %q is not a decimal length", cl[0])
	} else if int(n) != len(msg.Body) {
		return nil, fmt.Errorf("%w: content-length is %d, the body %d bytes", ErrDigestMismatch, n, len(msg.Body))
	}
	dg, _ := msg.header("Digest")
	if err := checkBodyDigest(dg[0], msg.Body); err != nil {
		return nil, err
	}
	if !utf8.Valid(msg.Body) {
		return nil, sigMalformed("the body is not UTF-8 text")
	}
	r := &Request{
		RawProtected: []byte(strings.Join(lines, "\n")),
		Type:         t,
		ProposalID:   proposalID,
		Payload:      append([]byte{}, msg.Body...),
		Signature:    sig,
	}
	r.httpSig = &httpSignature{keyID: p["keyId"], signingString: string(r.RawProtected), sig: sig}
	if t == MsgWithdrawal || t == MsgStateDigest {
		if err := checkEmptyPayload(r.Payload); err != nil {
			return nil, malformed("%s payload: %v", t, err)
		}
	}
	return r, nil
}

// parseSignatureParams reads `Signature k="v",k="v"…`. It accepts exactly
// keyId, algorithm (or signature_algorithm, which CCF's own script prints
// for offline signing), headers and signature, each once and each quoted,
// and refuses anything else: a parameter it ignored would be one a signer
// believed was honoured.
func parseSignatureParams(h string) (map[string]string, error) {
	if len(h) > maxAuthorizationBytes {
		return nil, sigMalformed("Authorization of %d bytes exceeds %d", len(h), maxAuthorizationBytes)
	}
	h = strings.TrimSpace(h)
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Signature") {
		return nil, sigMalformed("Authorization is not of the Signature scheme")
	}
	p := map[string]string{}
	rest = strings.TrimSpace(rest)
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		name = strings.TrimSpace(name)
		if !ok || !strings.HasPrefix(after, `"`) {
			return nil, sigMalformed("parameter %q is not name=\"value\"", name)
		}
		end := strings.IndexByte(after[1:], '"')
		if end < 0 {
			return nil, sigMalformed("parameter %s: unterminated quoted value", name)
		}
		value := after[1 : 1+end]
		rest = strings.TrimSpace(after[2+end:])
		if rest != "" {
			if rest[0] != ',' {
				return nil, sigMalformed("parameters are separated by commas")
			}
			rest = strings.TrimSpace(rest[1:])
			if rest == "" {
				return nil, sigMalformed("a comma ends the parameters")
			}
		}
		if name == "signature_algorithm" {
			name = "algorithm"
		}
		switch name {
		case "keyId", "algorithm", "headers", "signature":
		default:
			return nil, sigMalformed("unknown parameter %q (keyId, algorithm, headers and signature are read)", name)
		}
		if _, dup := p[name]; dup {
			return nil, sigMalformed("parameter %s given twice", name)
		}
		p[name] = value
	}
	if p["algorithm"] != "hs2019" {
		return nil, sigMalformed("algorithm %q: only hs2019 (ECDSA over SHA-384, as scurl.sh signs) is accepted", p["algorithm"])
	}
	if _, ok := p["headers"]; !ok {
		return nil, fmt.Errorf("%w: the signature has no headers parameter; it must cover %q", ErrHTTPSigMissingHeader, strings.Join(requiredSignedHeaders, " "))
	}
	if k := p["keyId"]; k == "" || len(k) > maxKeyIDLen {
		return nil, sigMalformed("keyId of %d characters, want 1..%d", len(k), maxKeyIDLen)
	}
	if s := p["signature"]; s == "" || len(s) > maxSignatureB64 {
		return nil, sigMalformed("signature of %d characters, want 1..%d", len(s), maxSignatureB64)
	}
	return p, nil
}

// checkBodyDigest checks a Digest header (RFC 3230) of the one form
// scurl.sh sends, SHA-256=<base64>, against body.
func checkBodyDigest(h string, body []byte) error {
	alg, val, ok := strings.Cut(strings.TrimSpace(h), "=")
	if !ok || !strings.EqualFold(alg, "SHA-256") || strings.Contains(val, ",") {
		return sigMalformed("Digest %q: want one SHA-256=<base64> value", h)
	}
	got, err := base64.StdEncoding.DecodeString(val)
	if err != nil || len(got) != sha256.Size {
		return sigMalformed("Digest %q: the value is not base64 of 32 bytes", h)
	}
	if want := sha256.Sum256(body); string(got) != string(want[:]) {
		return fmt.Errorf("%w: Digest says SHA-256=%s, the body's is SHA-256=%s", ErrDigestMismatch, val, base64.StdEncoding.EncodeToString(want[:]))
	}
	return nil
}

// pemForms are the PEM texts whose SHA-256 a member's keyId may be: the
// certificate as governance recorded it, with and without a final newline,
// with CRLF line ends, and re-encoded as openssl and Go write PEM (64
// columns, a final newline), which is what keygenerator.sh's file holds.
func pemForms(stored string, der []byte) []string {
	trimmed := strings.TrimRight(stored, "\r\n")
	canon := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return []string{stored, trimmed, trimmed + "\n", strings.ReplaceAll(trimmed, "\n", "\r\n") + "\r\n", canon}
}

// verify checks the signature with pub: ECDSA on P-256 or P-384 over
// SHA-384 of the signing string, DER encoded (scurl.sh's openssl dgst
// -sha384 -sign).
func (h *httpSignature) verify(pub any) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil || (k.Curve != elliptic.P256() && k.Curve != elliptic.P384()) {
		return fmt.Errorf("%w: HTTP signatures are verified for ECDSA P-256 and P-384 member keys only, not %T", ErrBadSignature, pub)
	}
	d := sha512.Sum384([]byte(h.signingString))
	if !ecdsa.VerifyASN1(k, d[:], h.sig) {
		return fmt.Errorf("%w: the HTTP signature does not verify with the member's key (ECDSA over SHA-384 of the signing string)", ErrBadSignature)
	}
	return nil
}

// replayKey is the entry in MapHTTPSignedRequests of memberID's request.
func (h *httpSignature) replayKey(memberID string) string {
	sum := sha256.Sum256([]byte(h.signingString))
	return memberID + ":" + hex.EncodeToString(sum[:])
}

// DescribeClaims says who made a governance transaction whose claims are
// not a COSE request (ParseRequest reads those): an HTTP-signed request
// ("proposal", member id, "HTTP signature") or a state digest asked with a
// client certificate ("state_digest", member id, "TLS client
// certificate"). ok is false for anything else.
func DescribeClaims(claims []byte) (t MsgType, memberID, how string, ok bool) {
	var c struct {
		httpClaims
		TLS *struct {
			MemberID string `json:"member_id"`
		} `json:"tls_client_certificate"`
	}
	if len(claims) == 0 || claims[0] != '{' || json.Unmarshal(claims, &c) != nil {
		return "", "", "", false
	}
	switch {
	case c.HTTPSignature.MemberID != "":
		return c.Type, c.HTTPSignature.MemberID, "HTTP signature", true
	case c.TLS != nil && c.TLS.MemberID != "":
		return c.Type, c.TLS.MemberID, "TLS client certificate", true
	}
	return "", "", "", false
}

// HTTPKeyID is the keyId of an HTTP-signed request ("" for a COSE one).
func (r *Request) HTTPKeyID() string {
	if r.httpSig == nil {
		return ""
	}
	return r.httpSig.keyID
}

// KeyIDNames reports whether an HTTP signature's keyId names the member
// whose certificate governance recorded as storedPEM (DER der): the keyId
// is the member id or the SHA-256 of one of the certificate's PEM forms.
func KeyIDNames(keyID, memberID, storedPEM string, der []byte) bool {
	keyID = strings.ToLower(keyID)
	if keyID == memberID {
		return true
	}
	for _, f := range pemForms(storedPEM, der) {
		if sum := sha256.Sum256([]byte(f)); hex.EncodeToString(sum[:]) == keyID {
			return true
		}
	}
	return false
}

// VerifyHTTPSignature checks an HTTP-signed request's signature with pub,
// whoever's key it is (the server tries members' keys when keyId names
// none).
func (r *Request) VerifyHTTPSignature(pub any) error {
	if r.httpSig == nil {
		return fmt.Errorf("%w: not an HTTP-signed request", ErrMalformed)
	}
	return r.httpSig.verify(pub)
}

// SetHTTPMember makes memberID the author of an HTTP-signed request and
// sets its Raw to the claims the ledger keeps of it: all an auditor needs
// to verify it again with the member's certificate.
func (r *Request) SetHTTPMember(memberID string) error {
	if r.httpSig == nil {
		return fmt.Errorf("%w: not an HTTP-signed request", ErrMalformed)
	}
	r.MemberID = memberID
	c := httpClaims{Type: r.Type, ProposalID: r.ProposalID, Body: string(r.Payload)}
	c.HTTPSignature.KeyID = r.httpSig.keyID
	c.HTTPSignature.MemberID = memberID
	c.HTTPSignature.SigningString = r.httpSig.signingString
	c.HTTPSignature.Signature = base64.StdEncoding.EncodeToString(r.httpSig.sig)
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	r.Raw = raw
	return nil
}

// HTTPReplayKey is an HTTP-signed request's entry in
// MapHTTPSignedRequests: its member and its signing string, which is
// accepted once, ever.
func (r *Request) HTTPReplayKey() string {
	if r.httpSig == nil {
		return ""
	}
	return r.httpSig.replayKey(r.MemberID)
}
