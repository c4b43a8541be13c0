package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/charterlog/charter/cbor"
	gocose "github.com/veraison/go-cose"
)

// DefaultMaxStatementSize is the size limit used when ParseOptions.MaxSize is 0.
const DefaultMaxStatementSize = 1 << 20

// Header labels used by signed statements.
const (
	labelAlg             int64 = 1   // RFC 9052 §3.1
	labelCrit            int64 = 2   // RFC 9052 §3.1
	labelContentType     int64 = 3   // RFC 9052 §3.1
	labelKid             int64 = 4   // RFC 9052 §3.1
	labelCWTClaims       int64 = 15  // RFC 9597
	labelX5Chain         int64 = 33  // RFC 9360
	labelX5T             int64 = 34  // RFC 9360
	labelPayloadHashAlg  int64 = 258 // RFC 9995 (COSE Hash Envelope)
	labelPreimageCType   int64 = 259 // RFC 9995
	labelPayloadLocation int64 = 260 // RFC 9995
)

// CWT claim keys (RFC 8392 §4).
const (
	claimIss int64 = 1
	claimSub int64 = 2
	claimExp int64 = 4
	claimNbf int64 = 5
	claimIat int64 = 6
)

// CWTClaims are the claims of protected header label 15 that SCITT uses.
type CWTClaims struct {
	Issuer    string // iss (1)
	Subject   string // sub (2)
	IssuedAt  *int64 // iat (6), seconds since the epoch; tag 1 accepted
	NotBefore *int64 // nbf (5)
	Expires   *int64 // exp (4)
	SVN       *int64 // "svn" (text key), security version number
}

// Statement is a parsed signed statement. ParseStatement keeps the received
// bytes; verification uses RawProtected exactly as received.
type Statement struct {
	Raw          []byte           // the bytes given to ParseStatement
	RawProtected []byte           // protected header bstr contents as received
	Alg          gocose.Algorithm // label 1
	ContentType  any              // label 3: string or int64; nil if absent
	Kid          []byte           // label 4, nil if absent
	// X5Chain holds the DER certificates of label 33, leaf first. Only the
	// protected header is read: SCITT requires the chain to be signed.
	X5Chain [][]byte
	// Chain is X5Chain parsed once by ParseStatement (nil without x5chain).
	Chain        []*x509.Certificate
	Crit         []any // label 2: int64 or string labels
	CWT          CWTClaims
	HashEnvelope *HashEnvelope // non-nil iff label 258 is present
	Payload      []byte        // nil if detached
	Signature    []byte
	// Protected holds every protected header parameter, keyed by int64 or
	// string label, value as received. Policies read extra labels here.
	Protected map[any]cbor.RawMessage
	// RawUnprotected is the unprotected header map as received, and
	// Unprotected its parameters.
	RawUnprotected []byte
	Unprotected    map[any]cbor.RawMessage
}

// ParseOptions bounds parsing.
type ParseOptions struct {
	// MaxSize is the largest accepted statement in bytes; 0 means
	// DefaultMaxStatementSize.
	MaxSize int
	// Chains, if non-nil, shares parsed x5chain certificates between
	// statements (see ChainCache).
	Chains *ChainCache
}

// supportedAlgs are the signature algorithms this package verifies.
var supportedAlgs = []gocose.Algorithm{
	gocose.AlgorithmES256, gocose.AlgorithmES384, gocose.AlgorithmES512,
	gocose.AlgorithmPS256, gocose.AlgorithmPS384, gocose.AlgorithmPS512,
	gocose.AlgorithmEdDSA,
}

// AlgorithmSupported reports whether Charter signs and verifies with a:
// ES256/384/512, PS256/384/512 or EdDSA.
func AlgorithmSupported(a gocose.Algorithm) bool {
	for _, s := range supportedAlgs {
		if s == a {
			return true
		}
	}
	return false
}

// understoodCrit lists the labels that may appear in crit: the ones this
// package processes beyond RFC 9052's own.
//
// RFC 9052 §3.1: "the recipient MUST understand and process" every label in
// crit. Labels of other profiles (for example the "attestedsvc" map of
// attested-service statements) are therefore rejected with ErrBadHeader.
var understoodCrit = map[any]bool{
	labelCWTClaims: true, labelX5Chain: true, labelX5T: true,
	labelPayloadHashAlg: true, labelPreimageCType: true, labelPayloadLocation: true,
}

// ParseStatement parses a SCITT signed statement and performs the structural
// checks listed in the package documentation. It does not verify the
// signature or the chain; see Verify. It never panics. The statement's
// byte fields alias raw, which must not change while it is in use.
func ParseStatement(b []byte, opts ParseOptions) (*Statement, error) {
	s, err := parse(b, opts)
	if err != nil {
		return nil, err
	}
	if err := s.checkProfile(); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseSign1 parses any tagged COSE_Sign1 under the same strict CBOR and
// header-type rules as ParseStatement, but without the SCITT profile: alg,
// CWT claims (iss, sub), kid or x5chain, an understood crit and an embedded
// payload are not required. Use it to read messages outside the profile,
// then VerifySignature with a known key. Verify and VerifyPayload still
// require what they need.
func ParseSign1(b []byte, opts ParseOptions) (*Statement, error) {
	return parse(b, opts)
}

func parse(b []byte, opts ParseOptions) (*Statement, error) {
	max := opts.MaxSize
	if max <= 0 {
		max = DefaultMaxStatementSize
	}
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), max)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrNotCOSE)
	}
	// RFC 8949 §5.3.1 well-formedness, strict: no trailing bytes, no
	// indefinite lengths, bounded nesting (decMode in cbor.go).
	if err := decMode.Wellformed(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCOSE, err)
	}
	var content []byte
	switch cbor.Major(b) {
	case cbor.MajorTag:
		// Wellformed accepted b as one item with nothing after it, so
		// the tag's head is sound and the rest of b is its content: one
		// item, sliced rather than copied (the statement aliases b).
		_, number, n, ok := cbor.ReadHead(b)
		if !ok {
			return nil, fmt.Errorf("%w: unreadable tag head", ErrNotCOSE)
		}
		content = b[n:]
		if cbor.Major(content) != cbor.MajorArray {
			return nil, fmt.Errorf("%w: tag %d does not enclose an array", ErrNotCOSE, number)
		}
		// RFC 9052 §4.2: COSE_Sign1_Tagged = #6.18(COSE_Sign1). Unlike
		// receipts and governance requests (DecodeSign1), a statement may
		// encode the tag's head in more bytes than it needs: RFC 8949
		// allows it, statements have always been accepted so, and one
		// registered so must still parse.
		if number != 18 {
			return nil, fmt.Errorf("%w: tag %d, want 18", ErrUntagged, number)
		}
	case cbor.MajorArray:
		// An untagged array of four is a COSE_Sign1 without its tag: say
		// so (ErrUntagged) rather than "not COSE".
		var arr []cbor.RawMessage
		if err := decMode.Unmarshal(b, &arr); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotCOSE, err)
		}
		if len(arr) != 4 {
			return nil, fmt.Errorf("%w: array of %d elements, want 4", ErrNotCOSE, len(arr))
		}
		return nil, fmt.Errorf("%w: SCITT signed statements must be tagged", ErrUntagged)
	default:
		return nil, fmt.Errorf("%w: top-level item is not a tagged array", ErrNotCOSE)
	}
	m, err := decodeSign1Array(content, Sign1Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCOSE, err)
	}
	s := &Statement{Raw: b, RawProtected: m.Protected, RawUnprotected: m.Unprotected, Payload: m.Payload, Signature: m.Signature}
	if err := s.parseUnprotected(); err != nil {
		return nil, err
	}
	if err := s.parseProtected(); err != nil {
		return nil, err
	}
	if s.X5Chain != nil {
		if err := s.parseChain(opts.Chains); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Statement) parseUnprotected() error {
	m, err := decodeHeaderMap(s.RawUnprotected)
	if err != nil {
		return fmt.Errorf("%w: unprotected: %v", ErrBadHeader, err)
	}
	s.Unprotected = m
	return nil
}

// parseProtected decodes the protected header and checks the types of the
// known labels. Presence rules of the SCITT profile are in checkProfile.
func (s *Statement) parseProtected() error {
	// RFC 9052 §3: "zero-length byte string ... if there are no protected
	// attributes". Anything else must be an encoded map.
	if len(s.RawProtected) == 0 {
		s.Protected = map[any]cbor.RawMessage{}
		return nil
	}
	if err := decMode.Wellformed(s.RawProtected); err != nil {
		return fmt.Errorf("%w: protected: %v", ErrBadHeader, err)
	}
	if cbor.Major(s.RawProtected) != cbor.MajorMap {
		return fmt.Errorf("%w: protected header is not a map", ErrBadHeader)
	}
	m, err := decodeHeaderMap(s.RawProtected)
	if err != nil {
		return fmt.Errorf("%w: protected: %v", ErrBadHeader, err)
	}
	s.Protected = m
	// RFC 9052 §3: "Labels MUST be unique ... The same label MUST NOT
	// occur in both the protected and unprotected headers."
	for k := range m {
		if _, dup := s.Unprotected[k]; dup {
			return fmt.Errorf("%w: label %v in both protected and unprotected headers", ErrBadHeader, k)
		}
	}
	if v, ok := m[labelAlg]; ok {
		a, err := cbor.DecodeInt(v)
		if err != nil {
			return fmt.Errorf("%w: alg (1) must be an integer: %v", ErrAlgorithmNotAllowed, err)
		}
		s.Alg = gocose.Algorithm(a)
	}
	if v, ok := m[labelCrit]; ok {
		// RFC 9052 §3.1: crit is "[+ label]", and each label must be present.
		var crit []cbor.RawMessage
		if cbor.Major(v) != cbor.MajorArray || decMode.Unmarshal(v, &crit) != nil || len(crit) == 0 {
			return fmt.Errorf("%w: crit (2) must be a non-empty array of labels", ErrBadHeader)
		}
		for _, c := range crit {
			l, err := decodeLabel(c)
			if err != nil {
				return fmt.Errorf("%w: crit (2): %v", ErrBadHeader, err)
			}
			if _, ok := m[l]; !ok {
				return fmt.Errorf("%w: crit (2) lists %v, which is not in the protected header", ErrBadHeader, l)
			}
			s.Crit = append(s.Crit, l)
		}
	}
	if v, ok := m[labelContentType]; ok {
		if s.ContentType, err = decodeContentType(v); err != nil {
			return fmt.Errorf("%w: content type (3): %v", ErrBadHeader, err)
		}
	}
	if v, ok := m[labelKid]; ok {
		if cbor.Major(v) != cbor.MajorBytes {
			return fmt.Errorf("%w: kid (4) must be a byte string", ErrBadHeader)
		}
		if s.Kid, err = cbor.DecodeBytes(v); err != nil {
			return fmt.Errorf("%w: kid (4): %v", ErrBadHeader, err)
		}
	}
	if v, ok := m[labelCWTClaims]; ok {
		if err := s.parseCWT(v); err != nil {
			return err
		}
	}
	if v, ok := m[labelX5Chain]; ok {
		if err := s.parseX5Chain(v); err != nil {
			return err
		}
	}
	if v, ok := m[labelX5T]; ok {
		// RFC 9360 §2: COSE_CertHash = [hashAlg: int / tstr, hashValue: bstr].
		var x5t []cbor.RawMessage
		if cbor.Major(v) != cbor.MajorArray || decMode.Unmarshal(v, &x5t) != nil || len(x5t) != 2 || cbor.Major(x5t[1]) != cbor.MajorBytes {
			return fmt.Errorf("%w: x5t (34) must be [alg, bstr]", ErrBadHeader)
		}
	}
	return s.parseHashEnvelope(m)
}

func (s *Statement) parseCWT(v cbor.RawMessage) error {
	if cbor.Major(v) != cbor.MajorMap {
		return fmt.Errorf("%w: label 15 is not a map", ErrMissingCWTClaims)
	}
	claims, err := decodeHeaderMap(v)
	if err != nil {
		return fmt.Errorf("%w: CWT claims: %v", ErrBadHeader, err)
	}
	text := func(k int64, name string, dst *string) error {
		c, ok := claims[k]
		if !ok {
			return nil
		}
		if cbor.Major(c) != cbor.MajorText || decMode.Unmarshal(c, dst) != nil {
			return fmt.Errorf("%w: %s (%d) is not text", ErrMissingCWTClaims, name, k)
		}
		return nil
	}
	if err := text(claimIss, "iss", &s.CWT.Issuer); err != nil {
		return err
	}
	if err := text(claimSub, "sub", &s.CWT.Subject); err != nil {
		return err
	}
	for _, c := range []struct {
		key  int64
		name string
		dst  **int64
	}{{claimIat, "iat", &s.CWT.IssuedAt}, {claimNbf, "nbf", &s.CWT.NotBefore}, {claimExp, "exp", &s.CWT.Expires}} {
		raw, ok := claims[c.key]
		if !ok {
			continue
		}
		// RFC 8392 §2: NumericDate, optionally with tag 1 (RFC 8949 §3.4.2).
		t, err := decodeNumericDate(raw)
		if err != nil {
			return fmt.Errorf("%w: CWT %s (%d): %v", ErrBadHeader, c.name, c.key, err)
		}
		*c.dst = &t
	}
	if raw, ok := claims["svn"]; ok {
		n, err := cbor.DecodeInt(raw)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: CWT svn must be an unsigned integer", ErrBadHeader)
		}
		s.CWT.SVN = &n
	}
	return nil
}

func (s *Statement) parseX5Chain(v cbor.RawMessage) error {
	// RFC 9360 §2: COSE_X509 = bstr / [2*certs: bstr]. v is a value of a
	// header map decodeHeaderMap accepted (well-formed under the policy):
	// the certificates are sub-slices of it, not copies.
	switch cbor.Major(v) {
	case cbor.MajorBytes:
		der, err := cbor.BytesContent(v)
		if err != nil {
			return fmt.Errorf("%w: x5chain (33): %v", ErrBadHeader, err)
		}
		s.X5Chain = [][]byte{der}
	case cbor.MajorArray:
		_, n, k, ok := cbor.ReadHead(v)
		if !ok || n == 0 || n > uint64(len(v)) {
			return fmt.Errorf("%w: x5chain (33) must be a bstr or a non-empty array of bstr", ErrBadHeader)
		}
		rest := v[k:]
		s.X5Chain = make([][]byte, 0, n)
		for range n {
			c, after, err := cbor.Split(rest)
			if err != nil {
				return fmt.Errorf("%w: x5chain (33): %v", ErrBadHeader, err)
			}
			rest = after
			if cbor.Major(c) != cbor.MajorBytes {
				return fmt.Errorf("%w: x5chain (33) element is not a byte string", ErrBadHeader)
			}
			der, err := cbor.BytesContent(c)
			if err != nil {
				return fmt.Errorf("%w: x5chain (33): %v", ErrBadHeader, err)
			}
			s.X5Chain = append(s.X5Chain, der)
		}
		if len(rest) != 0 {
			return fmt.Errorf("%w: x5chain (33) must be a bstr or a non-empty array of bstr", ErrBadHeader)
		}
	default:
		return fmt.Errorf("%w: x5chain (33) must be a bstr or an array of bstr", ErrBadHeader)
	}
	return nil
}

// parseChain parses X5Chain once, so that Verify does not parse again.
func (s *Statement) parseChain(cache *ChainCache) error {
	var key [32]byte
	if cache != nil {
		key = derChainKey(s.X5Chain)
		if e, ok := cache.get(key); ok {
			s.Chain = e.certs
			return nil
		}
	}
	s.Chain = make([]*x509.Certificate, len(s.X5Chain))
	for i, der := range s.X5Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: x5chain certificate %d: %v", ErrBadChain, i, err)
		}
		s.Chain[i] = c
	}
	if cache != nil {
		cache.put(key, s.Chain, false)
	}
	return nil
}

// checkProfile applies the SCITT presence rules (package doc, steps 5–10).
func (s *Statement) checkProfile() error {
	if _, ok := s.Protected[labelAlg]; !ok {
		return fmt.Errorf("%w: alg (1) is absent from the protected header", ErrAlgorithmNotAllowed)
	}
	if !AlgorithmSupported(s.Alg) {
		return fmt.Errorf("%w: alg %d is not supported", ErrAlgorithmNotAllowed, int64(s.Alg))
	}
	// RFC 9943 §6.1 / RFC 9597: CWT claims with iss and sub in the protected header.
	if _, ok := s.Protected[labelCWTClaims]; !ok {
		return fmt.Errorf("%w: no CWT claims (15) in the protected header", ErrMissingCWTClaims)
	}
	if s.CWT.Issuer == "" {
		return fmt.Errorf("%w: iss (1) is missing or empty", ErrMissingCWTClaims)
	}
	if s.CWT.Subject == "" {
		return fmt.Errorf("%w: sub (2) is missing or empty", ErrMissingCWTClaims)
	}
	if s.Kid == nil && s.X5Chain == nil {
		return fmt.Errorf("%w: neither kid (4) nor x5chain (33) is in the protected header", ErrMissingKey)
	}
	for _, c := range s.Crit {
		if !understoodCrit[c] {
			return fmt.Errorf("%w: critical header %v is not understood", ErrBadHeader, c)
		}
	}
	if s.Payload == nil {
		return fmt.Errorf("%w: a signed statement must embed its payload (or its hash envelope digest)", ErrDetachedPayload)
	}
	return nil
}

// LeafEntry is SHA-256 of the statement re-encoded with its unprotected
// header emptied: 18([protected bstr as received, {}, payload (or nil),
// signature]), with minimal-length CBOR heads. This is the Merkle leaf entry
// and the CCF claims digest; equal statements give equal entries.
func (s *Statement) LeafEntry() [32]byte {
	h := sha256.New()
	var buf [9]byte
	h.Write([]byte{0xd2, 0x84}) // tag 18, array(4)
	h.Write(cbor.AppendHead(buf[:0], cbor.MajorBytes, uint64(len(s.RawProtected))))
	h.Write(s.RawProtected)
	h.Write([]byte{0xa0}) // {}
	if s.Payload == nil {
		h.Write([]byte{cborNil})
	} else {
		h.Write(cbor.AppendHead(buf[:0], cbor.MajorBytes, uint64(len(s.Payload))))
		h.Write(s.Payload)
	}
	h.Write(cbor.AppendHead(buf[:0], cbor.MajorBytes, uint64(len(s.Signature))))
	h.Write(s.Signature)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func decodeNumericDate(raw []byte) (int64, error) {
	if cbor.Major(raw) == cbor.MajorTag {
		var t cbor.RawTag
		if err := decMode.Unmarshal(raw, &t); err != nil {
			return 0, err
		}
		if t.Number != 1 {
			return 0, fmt.Errorf("tag %d, want 1 (epoch time)", t.Number)
		}
		raw = t.Content
	}
	return cbor.DecodeInt(raw)
}

// decodeLabel decodes a header label: RFC 9052 §3, "label = int / tstr".
func decodeLabel(raw []byte) (any, error) {
	switch cbor.Major(raw) {
	case cbor.MajorUint, cbor.MajorNint:
		return cbor.DecodeInt(raw)
	case cbor.MajorText:
		return cbor.DecodeText(raw)
	}
	return nil, errors.New("label is neither an integer nor text")
}

func decodeContentType(raw []byte) (any, error) {
	// RFC 9052 §3.1: content type is "tstr / uint".
	switch cbor.Major(raw) {
	case cbor.MajorUint:
		return cbor.DecodeInt(raw)
	case cbor.MajorText:
		return cbor.DecodeText(raw)
	}
	return nil, errors.New("must be text or an unsigned integer")
}

// VerifyOptions configures (*Statement).Verify.
type VerifyOptions struct {
	// AllowedAlgs restricts the signature algorithm; empty means all
	// supported: ES256/384/512, PS256/384/512, EdDSA.
	AllowedAlgs []gocose.Algorithm
	// TrustedCAs are SHA-256 fingerprints of allowed root certificates;
	// empty means any chain that verifies to a self-signed root.
	TrustedCAs [][32]byte
	// Now is the time for chain validity; zero means time.Now().
	Now time.Time
	// IssuerKey resolves the key of a kid-only statement; nil means such
	// statements fail with ErrUnknownIssuerKey. Its errors are wrapped in
	// ErrUnknownIssuerKey.
	IssuerKey func(issuer string, kid []byte) (crypto.PublicKey, error)
	// SkipChainTime verifies the chain ignoring validity periods, for
	// offline verification of old statements.
	SkipChainTime bool
	// Chains, if non-nil, remembers chains whose links already verified so
	// that repeated statements from one issuer cost one signature check.
	Chains *ChainCache
}

// Issuer is the verified signer of a statement.
type Issuer struct {
	DID   string // CWT iss
	Key   crypto.PublicKey
	Chain []*x509.Certificate // nil for kid-resolved keys
}

// Verify resolves the issuer key and verifies the signature.
//
// With x5chain (preferred when both are present) it verifies the chain (see
// VerifyChain), requires iss to be a did:x509 that matches the chain, and
// verifies with the leaf key. With kid only, it asks opts.IssuerKey. The
// algorithm must be allowed and fit the key (ES256 P-256, ES384 P-384,
// ES512 P-521, PS* RSA ≥ 2048 bits, EdDSA Ed25519).
func (s *Statement) Verify(opts VerifyOptions) (*Issuer, error) {
	iss, err := s.VerifyIssuer(opts)
	if err != nil {
		return nil, err
	}
	if err := s.VerifySignature(iss.Key); err != nil {
		return nil, err
	}
	return iss, nil
}

// VerifyIssuer is Verify without the signature check: it resolves and
// checks the issuer's key (the algorithm, the chain and its did:x509, or
// the kid's key). The statement is verified only once VerifySignature with
// the returned key succeeds too; the node calls the two apart to time
// them apart.
func (s *Statement) VerifyIssuer(opts VerifyOptions) (*Issuer, error) {
	if s == nil {
		return nil, errors.New("cose: nil statement")
	}
	if !AlgorithmSupported(s.Alg) {
		return nil, fmt.Errorf("%w: alg %d is not supported", ErrAlgorithmNotAllowed, int64(s.Alg))
	}
	if len(opts.AllowedAlgs) > 0 && !slices.Contains(opts.AllowedAlgs, s.Alg) {
		return nil, fmt.Errorf("%w: %v is not in the allowed list", ErrAlgorithmNotAllowed, s.Alg)
	}
	if s.Payload == nil {
		return nil, fmt.Errorf("%w: cannot verify without the payload", ErrDetachedPayload)
	}
	iss := &Issuer{DID: s.CWT.Issuer}
	switch {
	case len(s.X5Chain) > 0:
		chain := s.Chain
		if len(chain) != len(s.X5Chain) {
			// A Statement built by hand rather than by ParseStatement.
			chain = make([]*x509.Certificate, len(s.X5Chain))
			for i, der := range s.X5Chain {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, fmt.Errorf("%w: x5chain certificate %d: %v", ErrBadChain, i, err)
				}
				chain[i] = c
			}
		}
		if err := VerifyChain(chain, opts); err != nil {
			return nil, err
		}
		did, err := ParseDIDX509(s.CWT.Issuer)
		if err != nil {
			return nil, fmt.Errorf("%w: iss %q: %v", ErrIssuerMismatch, s.CWT.Issuer, err)
		}
		if err := did.Match(chain); err != nil {
			return nil, err
		}
		iss.Chain = chain
		iss.Key = chain[0].PublicKey
	case s.Kid != nil:
		if opts.IssuerKey == nil {
			return nil, fmt.Errorf("%w: no issuer keys are configured for kid %x", ErrUnknownIssuerKey, s.Kid)
		}
		k, err := opts.IssuerKey(s.CWT.Issuer, s.Kid)
		if err != nil {
			return nil, fmt.Errorf("%w: iss %q kid %x: %v", ErrUnknownIssuerKey, s.CWT.Issuer, s.Kid, err)
		}
		if k == nil {
			return nil, fmt.Errorf("%w: iss %q kid %x", ErrUnknownIssuerKey, s.CWT.Issuer, s.Kid)
		}
		iss.Key = k
	default:
		return nil, fmt.Errorf("%w: neither kid (4) nor x5chain (33)", ErrMissingKey)
	}
	return iss, nil
}

// VerifySignature verifies the COSE_Sign1 signature with key over the
// Sig_structure built from the protected bytes as received. The statement's
// alg must fit key. It needs an embedded payload.
func (s *Statement) VerifySignature(key crypto.PublicKey) error {
	if s == nil {
		return errors.New("cose: nil statement")
	}
	if s.Payload == nil {
		return fmt.Errorf("%w: cannot verify without the payload", ErrDetachedPayload)
	}
	if err := CheckAlgorithmKey(s.Alg, key); err != nil {
		return err
	}
	v, err := gocose.NewVerifier(s.Alg, key)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAlgorithmNotAllowed, err)
	}
	// RFC 9052 §4.4: verify over ToBeSigned = Sig_structure, with the
	// protected bytes "as they were transmitted".
	if err := VerifySign1(v, s.Alg, s.RawProtected, s.Payload, s.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// CheckAlgorithmKey requires the key type (and curve) that alg names:
// ES256 with P-256, ES384 with P-384, ES512 with P-521, EdDSA with Ed25519,
// PS256/384/512 with RSA of at least 2048 bits. Its errors wrap
// ErrAlgorithmNotAllowed.
func CheckAlgorithmKey(alg gocose.Algorithm, key crypto.PublicKey) error {
	var want elliptic.Curve
	switch alg {
	case gocose.AlgorithmES256:
		want = elliptic.P256()
	case gocose.AlgorithmES384:
		want = elliptic.P384()
	case gocose.AlgorithmES512:
		want = elliptic.P521()
	case gocose.AlgorithmPS256, gocose.AlgorithmPS384, gocose.AlgorithmPS512:
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: %v needs an RSA key, have %T", ErrAlgorithmNotAllowed, alg, key)
		}
		// RFC 8230 §6.1: at least 2048 bits.
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: %v with a %d-bit RSA key; at least 2048 bits are required", ErrAlgorithmNotAllowed, alg, k.N.BitLen())
		}
		return nil
	case gocose.AlgorithmEdDSA:
		if k, ok := key.(ed25519.PublicKey); !ok || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: EdDSA needs an Ed25519 key, have %T", ErrAlgorithmNotAllowed, key)
		}
		return nil
	default:
		return fmt.Errorf("%w: alg %d is not supported", ErrAlgorithmNotAllowed, int64(alg))
	}
	k, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: %v needs an ECDSA key, have %T", ErrAlgorithmNotAllowed, alg, key)
	}
	if k.Curve != want {
		return fmt.Errorf("%w: %v needs curve %s, have %s", ErrAlgorithmNotAllowed, alg, want.Params().Name, k.Curve.Params().Name)
	}
	return nil
}

// VerifyChain checks an x5chain, leaf first. The last certificate is the
// root and its own trust anchor: it must be self-signed and, if
// opts.TrustedCAs is set, its SHA-256 fingerprint must be listed. Each
// certificate must be signed by the next one, which must be a CA; no
// certificate may carry an unhandled critical extension; unless
// opts.SkipChainTime, every certificate must be valid at opts.Now. Name and
// path-length constraints are not evaluated. Failures wrap ErrBadChain.
func VerifyChain(chain []*x509.Certificate, opts VerifyOptions) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: empty chain", ErrBadChain)
	}
	root := chain[len(chain)-1]
	if len(opts.TrustedCAs) > 0 {
		fp := sha256.Sum256(root.Raw)
		if !slices.Contains(opts.TrustedCAs, fp) {
			return fmt.Errorf("%w: root %q (sha256 %x) is not a trusted CA", ErrBadChain, root.Subject, fp)
		}
	}
	if !opts.SkipChainTime {
		now := opts.Now
		if now.IsZero() {
			now = time.Now()
		}
		for i, c := range chain {
			if now.Before(c.NotBefore) || now.After(c.NotAfter) {
				return fmt.Errorf("%w: certificate %d %q is valid from %s to %s, not at %s", ErrBadChain, i, c.Subject,
					c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			}
		}
	}
	var key [32]byte
	if opts.Chains != nil {
		key = chainKey(chain)
		if e, ok := opts.Chains.get(key); ok && e.verified {
			return nil
		}
	}
	for i, c := range chain {
		if len(c.UnhandledCriticalExtensions) > 0 {
			return fmt.Errorf("%w: certificate %d %q has unhandled critical extension %v", ErrBadChain, i, c.Subject, c.UnhandledCriticalExtensions[0])
		}
		if i+1 < len(chain) {
			// CheckSignatureFrom also requires the parent to be a CA
			// (basic constraints) allowed to sign certificates.
			if err := c.CheckSignatureFrom(chain[i+1]); err != nil {
				return fmt.Errorf("%w: certificate %d %q is not signed by certificate %d %q: %v", ErrBadChain, i, c.Subject, i+1, chain[i+1].Subject, err)
			}
		}
	}
	if err := root.CheckSignature(root.SignatureAlgorithm, root.RawTBSCertificate, root.Signature); err != nil {
		return fmt.Errorf("%w: root %q is not self-signed: %v", ErrBadChain, root.Subject, err)
	}
	if opts.Chains != nil {
		opts.Chains.put(key, chain, true)
	}
	return nil
}

// ChainCache remembers x5chains: the certificates parsed from their DER
// (shared by ParseStatement calls given the cache in ParseOptions.Chains,
// since parsed certificates are never modified) and whether their
// signatures verified (used by Verify given it in VerifyOptions.Chains).
// Entries are keyed by SHA-256 over the DER certificates. Validity times and
// TrustedCAs are still checked on every use. It is safe for concurrent use.
type ChainCache struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]*chainEntry
}

type chainEntry struct {
	certs    []*x509.Certificate
	verified bool
}

// NewChainCache returns a cache of at most max chains (1024 if max <= 0).
// When full it is emptied, which keeps it bounded without bookkeeping.
func NewChainCache(max int) *ChainCache {
	if max <= 0 {
		max = 1024
	}
	return &ChainCache{max: max, m: make(map[[32]byte]*chainEntry)}
}

func (c *ChainCache) get(k [32]byte) (chainEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return chainEntry{}, false
	}
	return *e, true
}

func (c *ChainCache) put(k [32]byte, certs []*x509.Certificate, verified bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[32]byte]*chainEntry)
	}
	if e, ok := c.m[k]; ok {
		e.verified = e.verified || verified
		return
	}
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = &chainEntry{certs: certs, verified: verified}
}

func chainKey(chain []*x509.Certificate) [32]byte {
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return derChainKey(ders)
}

func derChainKey(ders [][]byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, d := range ders {
		binary.BigEndian.PutUint64(n[:], uint64(len(d)))
		h.Write(n[:])
		h.Write(d)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
