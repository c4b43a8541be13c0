// Package policyinput owns what a registration policy sees of a signed
// statement: the mapping of a verified cose.Statement to policy.PolicyInput.
// The registry evaluates policies on it, and the CLI (charter policy test,
// charter ledger audit) re-runs them on it; it imports only cose and policy,
// so that the CLI applies the very same mapping without linking the ledger
// the registry serves.
package policyinput

import (
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strconv"
	"sync"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/policy"
)

// Of is what the policy sees of a statement, in the shapes of the CCF
// SCITT ledger's policies (phdr, uhdr, payload, details).
func Of(st *cose.Statement) policy.PolicyInput {
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
