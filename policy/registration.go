package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/grafana/sobek"
)

// ErrPolicy: the registration policy itself failed (it threw, returned
// something other than true or a string, or hit a limit). The statement is
// neither accepted nor rejected by policy; callers report a policy error.
var ErrPolicy = errors.New("policy: registration policy failed")

// PolicyError wraps ErrPolicy and the cause (a *RunError for a throw or a
// limit, nil for a bad return value). errors.Is matches both.
type PolicyError struct {
	Msg string
	Err error
}

func (e *PolicyError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%v: %s: %v", ErrPolicy, e.Msg, e.Err)
	}
	return fmt.Sprintf("%v: %s", ErrPolicy, e.Msg)
}

func (e *PolicyError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrPolicy}
	}
	return []error{ErrPolicy, e.Err}
}

// RegistrationPolicy is a compiled registration policy: a single ES module
// exporting `apply(phdr, uhdr, payload, details)`, the contract of the
// CCF-based SCITT ledger, so its policies port unchanged.
type RegistrationPolicy struct {
	prog *Program
}

// NewRegistrationPolicy compiles source as module "policy.js" and requires
// it to export a function apply.
func NewRegistrationPolicy(source string, limits Limits) (*RegistrationPolicy, error) {
	p, err := Compile("registration-policy", map[string]string{"policy.js": source}, "policy.js", limits)
	if err != nil {
		return nil, err
	}
	if err := p.RequireExports("apply"); err != nil {
		return nil, err
	}
	return &RegistrationPolicy{prog: p}, nil
}

// Verdict is a policy's decision on a statement it ran to completion on.
type Verdict struct {
	Accepted bool
	Reason   string // why it was rejected; empty when accepted
}

// CWTClaims are the CWT claims of the protected header (RFC 9597), as the
// policy sees them in phdr.cwt.
type CWTClaims struct {
	Iss string // phdr.cwt.iss; omitted when ""
	Sub string // phdr.cwt.sub; omitted when ""
	Iat *int64 // phdr.cwt.iat, seconds since the epoch; omitted when nil
	SVN *int64 // phdr.cwt.svn; omitted when nil
}

// ProtectedHeader is what a policy sees as phdr. Empty strings, nil slices
// and nil pointers become absent properties (so `if (!phdr.cty)` works).
type ProtectedHeader struct {
	Alg     string   // phdr.alg: algorithm name, e.g. "ES256", "PS384", "EdDSA"
	Cty     string   // phdr.cty: content type (a text type; numeric types are given as their decimal string)
	Kid     string   // phdr.kid: key id as a lowercase hex string
	Crit    []string // phdr.crit: critical labels, as strings (integer labels in decimal)
	X5Chain []string // phdr.x5chain: certificate chain, leaf first, PEM
	CWT     *CWTClaims

	// Hash envelope (draft-ietf-cose-hash-envelope), labels 258/259/260.
	PayloadHashAlg      string // phdr.payload_hash_alg, e.g. "SHA-256"
	PreimageContentType string // phdr.preimage_content_type
	PayloadLocation     string // phdr.payload_location
}

// PolicyInput is one statement as the policy sees it.
type PolicyInput struct {
	Protected ProtectedHeader
	// Unprotected becomes uhdr; nil gives {}.
	Unprotected map[string]any
	// Payload becomes an ArrayBuffer (a copy); nil (a detached payload)
	// gives undefined. For a hash envelope it is the hash, not the preimage.
	Payload []byte
	// Details becomes details; nil gives {}.
	Details map[string]any
}

func (in *PolicyInput) phdr() map[string]any {
	h := &in.Protected
	m := map[string]any{}
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	put("alg", h.Alg)
	put("cty", h.Cty)
	put("kid", h.Kid)
	if h.Crit != nil {
		m["crit"] = h.Crit
	}
	if h.X5Chain != nil {
		m["x5chain"] = h.X5Chain
	}
	if c := h.CWT; c != nil {
		cwt := map[string]any{}
		if c.Iss != "" {
			cwt["iss"] = c.Iss
		}
		if c.Sub != "" {
			cwt["sub"] = c.Sub
		}
		if c.Iat != nil {
			cwt["iat"] = *c.Iat
		}
		if c.SVN != nil {
			cwt["svn"] = *c.SVN
		}
		m["cwt"] = cwt
	}
	put("payload_hash_alg", h.PayloadHashAlg)
	put("preimage_content_type", h.PreimageContentType)
	put("payload_location", h.PayloadLocation)
	return m
}

// Evaluate runs apply on in. `true` accepts; a string rejects with that
// reason; anything else returned, an exception, or a limit gives an error
// wrapping ErrPolicy (a *PolicyError).
func (rp *RegistrationPolicy) Evaluate(ctx context.Context, in PolicyInput) (Verdict, error) {
	uhdr, details := in.Unprotected, in.Details
	if uhdr == nil {
		uhdr = map[string]any{}
	}
	if details == nil {
		details = map[string]any{}
	}
	var payload any = sobek.Undefined()
	if in.Payload != nil {
		payload = in.Payload
	}
	res, err := rp.prog.Call(ctx, "apply", in.phdr(), uhdr, payload, details)
	if err != nil {
		return Verdict{}, &PolicyError{Msg: "apply failed", Err: err}
	}
	switch v := res.(type) {
	case bool:
		if v {
			return Verdict{Accepted: true}, nil
		}
	case string:
		return Verdict{Reason: v}, nil
	}
	return Verdict{}, &PolicyError{Msg: fmt.Sprintf("apply returned %s; want true or a string reason", describeGo(res))}
}

func describeGo(v any) string {
	switch v.(type) {
	case nil:
		return "undefined or null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T %v", v, v)
}
