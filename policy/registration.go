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
	// observed[i]: apply can observe its argument i (namedParams); the
	// others are passed as undefined rather than built.
	observed []bool
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
	return &RegistrationPolicy{prog: p, observed: namedParams(source, "apply", 4)}, nil
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

// phdrJS makes phdr as a fresh JS object of rt, with the properties in the
// order toJS would give the equivalent map[string]any (sorted keys), so
// Object.keys and JSON.stringify see the same object as before: alg, crit,
// cty, cwt (iat, iss, sub, svn), kid, payload_hash_alg, payload_location,
// preimage_content_type, x5chain. Building it directly skips a Go map, key
// sorting and the generic conversion, a quarter of a policy call's cost.
func (in *PolicyInput) phdrJS(rt *sobek.Runtime) (*sobek.Object, error) {
	h := &in.Protected
	o := rt.NewObject()
	var err error
	set := func(o *sobek.Object, k string, v sobek.Value) {
		if err == nil {
			err = o.Set(k, v)
		}
	}
	str := func(o *sobek.Object, k, v string) {
		if v != "" {
			set(o, k, rt.ToValue(v))
		}
	}
	str(o, "alg", h.Alg)
	if h.Crit != nil {
		set(o, "crit", stringArray(rt, h.Crit))
	}
	str(o, "cty", h.Cty)
	if c := h.CWT; c != nil {
		cwt := rt.NewObject()
		if c.Iat != nil {
			set(cwt, "iat", rt.ToValue(*c.Iat))
		}
		str(cwt, "iss", c.Iss)
		str(cwt, "sub", c.Sub)
		if c.SVN != nil {
			set(cwt, "svn", rt.ToValue(*c.SVN))
		}
		set(o, "cwt", cwt)
	}
	str(o, "kid", h.Kid)
	str(o, "payload_hash_alg", h.PayloadHashAlg)
	str(o, "payload_location", h.PayloadLocation)
	str(o, "preimage_content_type", h.PreimageContentType)
	if h.X5Chain != nil {
		set(o, "x5chain", stringArray(rt, h.X5Chain))
	}
	return o, err
}

// stringArray is toJS of a []string without boxing each string twice.
func stringArray(rt *sobek.Runtime, ss []string) *sobek.Object {
	items := make([]any, len(ss))
	for i, s := range ss {
		items[i] = rt.ToValue(s)
	}
	return rt.NewArray(items...)
}

// args makes apply's arguments (phdr, uhdr, payload, details) as fresh JS
// values of rt; an argument apply cannot observe (observed[i] false) is
// left undefined.
func (in *PolicyInput) args(rt *sobek.Runtime, observed []bool) ([]sobek.Value, error) {
	args := []sobek.Value{sobek.Undefined(), sobek.Undefined(), sobek.Undefined(), sobek.Undefined()}
	if observed[0] {
		phdr, err := in.phdrJS(rt)
		if err != nil {
			return nil, fmt.Errorf("phdr: %w", err)
		}
		args[0] = phdr
	}
	obj := func(m map[string]any) (sobek.Value, error) {
		if m == nil {
			return rt.NewObject(), nil
		}
		return toJS(rt, m, 0)
	}
	var err error
	if observed[1] {
		if args[1], err = obj(in.Unprotected); err != nil {
			return nil, fmt.Errorf("uhdr: %w", err)
		}
	}
	if observed[2] && in.Payload != nil {
		args[2] = rt.ToValue(rt.NewArrayBuffer(append([]byte(nil), in.Payload...)))
	}
	if observed[3] {
		if args[3], err = obj(in.Details); err != nil {
			return nil, fmt.Errorf("details: %w", err)
		}
	}
	return args, nil
}

// Evaluate runs apply on in. `true` accepts; a string rejects with that
// reason; anything else returned, an exception, or a limit gives an error
// wrapping ErrPolicy (a *PolicyError).
func (rp *RegistrationPolicy) Evaluate(ctx context.Context, in PolicyInput) (Verdict, error) {
	res, err := rp.prog.callBuilt(ctx, nil, "apply", func(rt *sobek.Runtime) ([]sobek.Value, error) {
		return in.args(rt, rp.observed)
	})
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
