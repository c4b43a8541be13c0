package registry

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/policy"
)

// RegistrationPolicy is the governed JS registration policy in force, and
// its version: SHA-256 of its source, recorded with every registration it
// accepts so that an auditor can re-run it.
type RegistrationPolicy struct {
	Policy  *policy.RegistrationPolicy
	Version [32]byte
}

// PolicyInput is what the policy sees of a statement, in the shapes of the
// CCF SCITT ledger's policies (phdr, uhdr, payload, details).
func PolicyInput(st *cose.Statement) policy.PolicyInput {
	ph := policy.ProtectedHeader{Alg: st.Alg.String()}
	switch ct := st.ContentType.(type) {
	case string:
		ph.Cty = ct
	case int64:
		ph.Cty = strconv.FormatInt(ct, 10)
	}
	if st.Kid != nil {
		ph.Kid = hex.EncodeToString(st.Kid)
	}
	for _, c := range st.Crit {
		ph.Crit = append(ph.Crit, fmt.Sprint(c))
	}
	if len(st.X5Chain) > 0 {
		ph.X5Chain = make([]string, len(st.X5Chain))
		for i, der := range st.X5Chain {
			ph.X5Chain[i] = certPEM(der)
		}
	}
	ph.CWT = &policy.CWTClaims{Iss: st.CWT.Issuer, Sub: st.CWT.Subject, Iat: st.CWT.IssuedAt, SVN: st.CWT.SVN}
	if he := st.HashEnvelope; he != nil {
		ph.PayloadHashAlg = hashAlgName(int64(he.PayloadHashAlg))
		switch ct := he.PreimageContentType.(type) {
		case string:
			ph.PreimageContentType = ct
		case int64:
			ph.PreimageContentType = strconv.FormatInt(ct, 10)
		}
		ph.PayloadLocation = he.PayloadLocation
	}
	return policy.PolicyInput{Protected: ph, Payload: st.Payload}
}

// evaluatePolicy runs the policy on a verified statement. A rejection is
// PolicyFailed with the policy's reason; a policy that throws, returns
// anything but true or a string, or exceeds its limits is PolicyError.
//
// No deadline of its own: a call is bounded by the sandbox's limits (CPU
// time, and a wall-clock backstop), so waiting for a pooled runtime is
// bounded by how long the calls ahead of it may run; a client that goes
// away cancels ctx.
func evaluatePolicy(ctx context.Context, rp *RegistrationPolicy, st *cose.Statement) *Problem {
	v, err := rp.Policy.Evaluate(ctx, PolicyInput(st))
	if err != nil {
		if errors.Is(err, policy.ErrPolicy) {
			return &Problem{Status: http.StatusBadRequest, Title: "PolicyError", Detail: err.Error()}
		}
		return ProblemFor(err)
	}
	if !v.Accepted {
		return &Problem{Status: http.StatusBadRequest, Title: "PolicyFailed", Detail: v.Reason}
	}
	return nil
}

// hashAlgName names a COSE hash algorithm (IANA COSE Algorithms).
func hashAlgName(a int64) string {
	switch a {
	case -16:
		return "SHA-256"
	case -43:
		return "SHA-384"
	case -44:
		return "SHA-512"
	}
	return strconv.FormatInt(a, 10)
}

// pemCache remembers the PEM text of recently seen certificates: most
// statements come from a few issuers, and encoding a chain on every
// registration was a fifth of a policy's cost.
var pemCache = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

const pemCacheSize = 1024

func certPEM(der []byte) string {
	pemCache.Lock()
	defer pemCache.Unlock()
	if p, ok := pemCache.m[string(der)]; ok {
		return p
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if len(pemCache.m) >= pemCacheSize {
		clear(pemCache.m)
	}
	pemCache.m[string(der)] = p
	return p
}
