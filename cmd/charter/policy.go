package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry/policyinput"
)

func init() {
	register(command{name: "policy test", summary: "run a registration policy locally on a signed statement", run: runPolicyTest})
}

// maxStatementFile bounds the statements the policy commands read.
const maxStatementFile = 64 << 20

// errNotAccepted is returned (exit 1) when a policy rejected a statement or
// failed on it; the verdict itself is already on stdout.
var errNotAccepted = errors.New("the policy did not accept the statement")

// probeSource is a registration policy that returns, as its "reason", what
// it was given: the inputs are shown exactly as the sandbox converts them
// for any policy, without a second copy of that conversion here.
const probeSource = `export function apply(phdr, uhdr, payload, details) {
  return JSON.stringify({
    phdr, uhdr, details,
    payload: payload === undefined ? null : payload.byteLength,
  }, null, 2);
}`

var probePolicy = sync.OnceValues(func() (*policy.RegistrationPolicy, error) {
	return policy.NewRegistrationPolicy(probeSource, policy.Limits{})
})

// runPolicyTest evaluates a policy on one statement as the service would:
// the same input mapping (policyinput.Of), the same default limits.
// It does not verify the signature: the service runs the policy only after
// that, and an auditor testing a policy wants its verdict either way.
func runPolicyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy test", "--policy P.js STATEMENT.cose", stderr)
	polPath := fs.String("policy", "", "the registration policy (JS module exporting apply)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *polPath == "" || len(pos) != 1 {
		return usageError("want --policy P.js and one signed statement file")
	}
	src, err := os.ReadFile(*polPath)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	st, err := readStatement(pos[0])
	if err != nil {
		return err
	}
	in := policyinput.Of(st)
	if shown, err := describeInputs(ctx, in); err != nil {
		fmt.Fprintf(stderr, "charter policy test: cannot show the inputs: %v\n", err)
	} else {
		fmt.Fprintln(stdout, shown)
	}
	rp, err := policy.NewRegistrationPolicy(string(src), policy.Limits{})
	if err != nil {
		fmt.Fprintf(stdout, "policy error: %s does not compile: %s\n", *polPath, oneLine(err.Error()))
		return errNotAccepted
	}
	v, err := evaluate(ctx, rp, in)
	if err != nil {
		fmt.Fprintf(stdout, "policy error: %s\n", oneLine(err.Error()))
		return errNotAccepted
	}
	if !v.Accepted {
		fmt.Fprintf(stdout, "rejected: %s\n", oneLine(v.Reason))
		return errNotAccepted
	}
	fmt.Fprintln(stdout, "accepted")
	return nil
}

// readStatement reads and parses a signed statement file.
func readStatement(path string) (*cose.Statement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatementFile+1))
	if err != nil {
		return nil, err
	}
	st, err := cose.ParseStatement(b, cose.ParseOptions{MaxSize: maxStatementFile})
	if err != nil {
		return nil, fmt.Errorf("%s is not a signed statement Charter accepts: %w", path, err)
	}
	return st, nil
}

// evaluate runs rp on in under the service's per-registration deadline
// (registry.evaluatePolicy); the sandbox's own limits apply within it.
func evaluate(ctx context.Context, rp *policy.RegistrationPolicy, in policy.PolicyInput) (policy.Verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return rp.Evaluate(ctx, in)
}

// describeInputs renders phdr, uhdr, details and the payload size as the
// policy receives them.
func describeInputs(ctx context.Context, in policy.PolicyInput) (string, error) {
	probe, err := probePolicy()
	if err != nil {
		return "", err
	}
	v, err := evaluate(ctx, probe, in)
	if err != nil {
		return "", err
	}
	return "inputs: " + v.Reason, nil
}

// oneLine keeps a verdict on one line: a JS stack trace or a reason with
// newlines is joined with spaces.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}
