package registry

import (
	"context"
	"errors"
	"net/http"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry/policyinput"
)

// RegistrationPolicy is the governed JS registration policy in force, and
// its version: SHA-256 of its source, recorded with every registration it
// accepts so that an auditor can re-run it.
type RegistrationPolicy struct {
	Policy  *policy.RegistrationPolicy
	Version [32]byte
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
	v, err := rp.Policy.Evaluate(ctx, policyinput.Of(st))
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
