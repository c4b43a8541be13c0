package cose

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
)

// did:x509 identifiers, per the DIF did:x509 method specification (v0):
//
//	did:x509:0:<alg>:<base64url fingerprint of a CA certificate>::<policy>(::<policy>)*
//	policy = name ":" value-component (":" value-component)*
//	idchar = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded
//
// The fingerprint (sha256, sha384 or sha512 of the DER certificate) must
// match a certificate of the chain other than the leaf. Every policy must
// hold for the leaf:
//
//	subject:<key>:<value>(:<key>:<value>)*  each attribute (CN, L, ST, O, OU,
//	                                       C, STREET or a dotted OID) equals
//	                                       a value in the leaf subject; no key twice
//	san:<email|dns|uri|ipaddress>:<value>   the leaf has that subject alt name
//	eku:<dotted OID>                        the leaf has that extended key usage

// DIDX509 is a parsed did:x509 identifier.
type DIDX509 struct {
	Version        int    // always 0
	FingerprintAlg string // "sha256", "sha384" or "sha512"
	Fingerprint    []byte // the decoded CA fingerprint
	Policies       []DIDX509Policy
	raw            string
}

// DIDX509Policy is one "::"-separated policy. Values are the ":"-separated
// components after the name, percent-decoded: subject key/value pairs, a
// san type and value, or one EKU OID.
type DIDX509Policy struct {
	Name   string
	Values []string
}

// String returns the identifier as parsed.
func (d *DIDX509) String() string { return d.raw }

var subjectAttrOIDs = map[string]asn1.ObjectIdentifier{
	"CN":     {2, 5, 4, 3},
	"C":      {2, 5, 4, 6},
	"L":      {2, 5, 4, 7},
	"ST":     {2, 5, 4, 8},
	"STREET": {2, 5, 4, 9},
	"O":      {2, 5, 4, 10},
	"OU":     {2, 5, 4, 11},
}

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}

var fingerprintLen = map[string]int{"sha256": sha256.Size, "sha384": sha512.Size384, "sha512": sha512.Size}

// ParseDIDX509 parses and validates a did:x509 identifier. It accepts only
// version 0, the three fingerprint algorithms, canonical unpadded base64url
// fingerprints of the right length, and the policies subject, san and eku.
func ParseDIDX509(s string) (*DIDX509, error) {
	const prefix = "did:x509:"
	if !strings.HasPrefix(s, prefix) {
		return nil, fmt.Errorf("did:x509: %q does not start with %q", s, prefix)
	}
	parts := strings.Split(s[len(prefix):], "::")
	if len(parts) < 2 {
		return nil, fmt.Errorf("did:x509: %q has no policy", s)
	}
	head := strings.Split(parts[0], ":")
	if len(head) != 3 {
		return nil, fmt.Errorf("did:x509: %q: want 0:<alg>:<fingerprint> before the first \"::\"", s)
	}
	if head[0] != "0" {
		return nil, fmt.Errorf("did:x509: version %q is not supported (want 0)", head[0])
	}
	n, ok := fingerprintLen[head[1]]
	if !ok {
		return nil, fmt.Errorf("did:x509: fingerprint algorithm %q is not sha256, sha384 or sha512", head[1])
	}
	fp, err := base64.RawURLEncoding.Strict().DecodeString(head[2])
	if err != nil || len(fp) != n {
		return nil, fmt.Errorf("did:x509: fingerprint %q is not %d bytes of unpadded base64url", head[2], n)
	}
	d := &DIDX509{FingerprintAlg: head[1], Fingerprint: fp, raw: s}
	for _, p := range parts[1:] {
		pol, err := parsePolicy(p)
		if err != nil {
			return nil, err
		}
		d.Policies = append(d.Policies, pol)
	}
	return d, nil
}

func parsePolicy(p string) (DIDX509Policy, error) {
	comps := strings.Split(p, ":")
	pol := DIDX509Policy{Name: comps[0]}
	for _, c := range comps[1:] {
		v, err := pctDecode(c)
		if err != nil {
			return pol, fmt.Errorf("did:x509: policy %q: %v", p, err)
		}
		pol.Values = append(pol.Values, v)
	}
	switch pol.Name {
	case "subject":
		if len(pol.Values) == 0 || len(pol.Values)%2 != 0 {
			return pol, fmt.Errorf("did:x509: subject policy %q needs key:value pairs", p)
		}
		seen := map[string]bool{}
		for i := 0; i < len(pol.Values); i += 2 {
			k := pol.Values[i]
			if _, err := subjectAttrOID(k); err != nil {
				return pol, fmt.Errorf("did:x509: subject policy %q: %v", p, err)
			}
			if seen[k] {
				return pol, fmt.Errorf("did:x509: subject policy %q names %s twice", p, k)
			}
			seen[k] = true
		}
	case "san":
		if len(pol.Values) != 2 {
			return pol, fmt.Errorf("did:x509: san policy %q needs type:value", p)
		}
		switch pol.Values[0] {
		case "email", "dns", "uri", "ipaddress":
		default:
			return pol, fmt.Errorf("did:x509: san type %q is not email, dns, uri or ipaddress", pol.Values[0])
		}
	case "eku":
		if len(pol.Values) != 1 {
			return pol, fmt.Errorf("did:x509: eku policy %q needs one OID", p)
		}
		if _, err := parseOID(pol.Values[0]); err != nil {
			return pol, fmt.Errorf("did:x509: eku policy %q: %v", p, err)
		}
	default:
		return pol, fmt.Errorf("did:x509: policy %q is not supported (subject, san, eku)", pol.Name)
	}
	for _, v := range pol.Values {
		if v == "" {
			return pol, fmt.Errorf("did:x509: policy %q has an empty component", p)
		}
	}
	return pol, nil
}

func subjectAttrOID(k string) (asn1.ObjectIdentifier, error) {
	if oid, ok := subjectAttrOIDs[k]; ok {
		return oid, nil
	}
	oid, err := parseOID(k)
	if err != nil {
		return nil, fmt.Errorf("subject attribute %q is neither CN, L, ST, O, OU, C, STREET nor a dotted OID", k)
	}
	return oid, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("%q is not a dotted OID", s)
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
			return nil, fmt.Errorf("%q is not a dotted OID", s)
		}
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("%q is not a dotted OID", s)
			}
			n = n*10 + int(c-'0')
		}
		oid[i] = n
	}
	return oid, nil
}

// Match checks the identifier against chain (leaf first). Failures wrap
// ErrIssuerMismatch.
func (d *DIDX509) Match(chain []*x509.Certificate) error {
	if d == nil {
		return fmt.Errorf("%w: nil did:x509", ErrIssuerMismatch)
	}
	if len(chain) < 2 {
		return fmt.Errorf("%w: did:x509 needs a chain with a CA certificate above the leaf", ErrIssuerMismatch)
	}
	found := false
	for _, c := range chain[1:] {
		if bytes.Equal(fingerprint(d.FingerprintAlg, c.Raw), d.Fingerprint) {
			found = true
			break
		}
	}
	if !found {
		return fmt.Errorf("%w: no CA certificate in the chain has %s fingerprint %s", ErrIssuerMismatch,
			d.FingerprintAlg, base64.RawURLEncoding.EncodeToString(d.Fingerprint))
	}
	leaf := chain[0]
	for _, p := range d.Policies {
		if err := matchPolicy(p, leaf); err != nil {
			return fmt.Errorf("%w: %v", ErrIssuerMismatch, err)
		}
	}
	return nil
}

func fingerprint(alg string, der []byte) []byte {
	switch alg {
	case "sha256":
		h := sha256.Sum256(der)
		return h[:]
	case "sha384":
		h := sha512.Sum384(der)
		return h[:]
	case "sha512":
		h := sha512.Sum512(der)
		return h[:]
	}
	return nil
}

func matchPolicy(p DIDX509Policy, leaf *x509.Certificate) error {
	switch p.Name {
	case "subject":
		for i := 0; i+1 < len(p.Values); i += 2 {
			k, want := p.Values[i], p.Values[i+1]
			oid, err := subjectAttrOID(k)
			if err != nil {
				return err
			}
			ok := false
			for _, a := range leaf.Subject.Names {
				if v, isStr := a.Value.(string); isStr && a.Type.Equal(oid) && v == want {
					ok = true
					break
				}
			}
			if !ok {
				return fmt.Errorf("leaf subject %q has no %s %q", leaf.Subject, k, want)
			}
		}
		return nil
	case "san":
		typ, want := p.Values[0], p.Values[1]
		var have []string
		switch typ {
		case "email":
			have = leaf.EmailAddresses
		case "dns":
			have = leaf.DNSNames
		case "uri":
			for _, u := range leaf.URIs {
				have = append(have, u.String())
			}
		case "ipaddress":
			w := net.ParseIP(want)
			for _, ip := range leaf.IPAddresses {
				if w != nil && ip.Equal(w) {
					return nil
				}
			}
		}
		for _, h := range have {
			if h == want {
				return nil
			}
		}
		return fmt.Errorf("leaf has no %s subject alternative name %q", typ, want)
	case "eku":
		want, err := parseOID(p.Values[0])
		if err != nil {
			return err
		}
		ekus, err := extKeyUsageOIDs(leaf)
		if err != nil {
			return err
		}
		for _, e := range ekus {
			if e.Equal(want) {
				return nil
			}
		}
		return fmt.Errorf("leaf has no extended key usage %s", want)
	}
	return fmt.Errorf("policy %q is not supported", p.Name)
}

// extKeyUsageOIDs reads the leaf's EKU extension as OIDs (crypto/x509 maps
// known ones to constants, which loses their OIDs).
func extKeyUsageOIDs(c *x509.Certificate) ([]asn1.ObjectIdentifier, error) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidExtKeyUsage) {
			continue
		}
		var oids []asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(e.Value, &oids)
		if err != nil || len(rest) != 0 {
			return nil, errors.New("leaf extended key usage extension is malformed")
		}
		return oids, nil
	}
	return nil, nil
}

// NewDIDX509 returns the did:x509 identifier for chain (leaf first) with the
// fingerprint (sha256) of chain[caIndex], which must not be the leaf, and
// the given policies in DID syntax, for example "subject:CN:My Name",
// "san:dns:example.com" or "eku:1.3.6.1.5.5.7.3.3". Characters outside
// did:x509's idchar (other than ":" separators and existing %XX escapes) are
// percent-encoded; to put ":" or "%" in a value, encode it with PctEncode.
// The result is parsed and matched against chain before it is returned.
func NewDIDX509(chain []*x509.Certificate, caIndex int, policies ...string) (string, error) {
	if caIndex < 1 || caIndex >= len(chain) {
		return "", fmt.Errorf("did:x509: CA index %d is not a non-leaf certificate of a %d-certificate chain", caIndex, len(chain))
	}
	if len(policies) == 0 {
		return "", errors.New("did:x509: at least one policy is required")
	}
	var b strings.Builder
	b.WriteString("did:x509:0:sha256:")
	b.WriteString(base64.RawURLEncoding.EncodeToString(fingerprint("sha256", chain[caIndex].Raw)))
	for _, p := range policies {
		b.WriteString("::")
		for i := 0; i < len(p); i++ {
			c := p[i]
			if isIDChar(c) || c == ':' || c == '%' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
	}
	did := b.String()
	d, err := ParseDIDX509(did)
	if err != nil {
		return "", err
	}
	if err := d.Match(chain); err != nil {
		return "", err
	}
	return did, nil
}

// PctEncode percent-encodes s for use as one did:x509 policy component:
// every byte outside ALPHA / DIGIT / "." / "-" / "_" becomes %XX.
func PctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isIDChar(s[i]) {
			b.WriteByte(s[i])
		} else {
			fmt.Fprintf(&b, "%%%02X", s[i])
		}
	}
	return b.String()
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
}

func pctDecode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated escape in %q", s)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("bad escape in %q", s)
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		case isIDChar(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("character %q must be percent-encoded", c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
