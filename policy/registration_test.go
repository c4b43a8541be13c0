package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/charterlog/charter/policy"
)

// A policy of the shape governance sets: five checks on the protected header.
const fiveChecks = `
const ALLOWED_ALGS = ["ES256", "ES384", "PS256"];
export function apply(phdr, uhdr, payload, details) {
	if (!ALLOWED_ALGS.includes(phdr.alg)) { return "alg " + phdr.alg + " not allowed"; }
	if (phdr.cty !== "application/spdx+json") { return "unexpected cty"; }
	if (!phdr.cwt || !phdr.cwt.iss || !phdr.cwt.iss.startsWith("did:x509:0:sha256:")) { return "issuer must be did:x509"; }
	if (phdr.cwt.svn !== undefined && phdr.cwt.svn < 2) { return "svn too low"; }
	if (!Array.isArray(phdr.x5chain) || phdr.x5chain.length === 0 || !phdr.x5chain[0].startsWith("-----BEGIN CERTIFICATE-----")) { return "x5chain required"; }
	return true;
}
`

func goodInput() policy.PolicyInput {
	svn := int64(3)
	return policy.PolicyInput{
		Protected: policy.ProtectedHeader{
			Alg: "ES256", Cty: "application/spdx+json", Kid: "0a0b",
			X5Chain: []string{"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
			CWT:     &policy.CWTClaims{Iss: "did:x509:0:sha256:abc::eku:1.3.6.1", Sub: "pkg:npm/x", SVN: &svn},
		},
		Payload: []byte("{}"),
	}
}

func TestRegistrationVerdicts(t *testing.T) {
	rp, err := policy.NewRegistrationPolicy(fiveChecks, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := rp.Evaluate(context.Background(), goodInput())
	if err != nil || !v.Accepted || v.Reason != "" {
		t.Fatalf("good input: %+v, %v", v, err)
	}
	in := goodInput()
	in.Protected.Alg = "RS1"
	v, err = rp.Evaluate(context.Background(), in)
	if err != nil || v.Accepted || v.Reason != "alg RS1 not allowed" {
		t.Fatalf("bad alg: %+v, %v", v, err)
	}
	in = goodInput()
	in.Protected.CWT.SVN = nil // absent claims are absent, not 0
	if v, err = rp.Evaluate(context.Background(), in); err != nil || !v.Accepted {
		t.Fatalf("no svn: %+v, %v", v, err)
	}
}

func TestRegistrationPolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		src   string
		cause error  // also matched, besides ErrPolicy; nil for a bad return value
		msg   string // in the error
	}{
		{`export function apply() { return 42; }`, nil, "int64 42"},
		{`export function apply() { return false; }`, nil, "bool false"},
		{`export function apply() {}`, nil, "undefined"},
		{`export function apply() { return { ok: true }; }`, nil, "an object"},
		{`export function apply() { throw new Error("policy bug"); }`, policy.ErrThrown, "Error: policy bug"},
		{`export function apply() { for (;;) {} }`, policy.ErrTimeout, "ran longer than"},
	} {
		rp, err := policy.NewRegistrationPolicy(tc.src, policy.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := rp.Evaluate(context.Background(), goodInput())
		var pe *policy.PolicyError
		if !errors.Is(err, policy.ErrPolicy) || !errors.As(err, &pe) || v.Accepted {
			t.Errorf("%s: %+v, %v; want a PolicyError", tc.src, v, err)
			continue
		}
		if tc.cause != nil && !errors.Is(err, tc.cause) {
			t.Errorf("%s: %v; want it to wrap %v", tc.src, err, tc.cause)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want %q in it", tc.src, err, tc.msg)
		}
	}
}

func TestRegistrationInputShape(t *testing.T) {
	rp, err := policy.NewRegistrationPolicy(`
export function apply(phdr, uhdr, payload, details) {
	const shape = JSON.stringify({ phdr, uhdr, details, payload: payload === undefined ? "undefined" : Array.from(new Uint8Array(payload)) });
	return shape;
}`, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	iat := int64(1700000000)
	in := policy.PolicyInput{Protected: policy.ProtectedHeader{
		Alg: "ES384", Crit: []string{"259"}, CWT: &policy.CWTClaims{Iss: "i", Iat: &iat},
		PayloadHashAlg: "SHA-256", PreimageContentType: "application/json", PayloadLocation: "https://x/y",
	}, Details: map[string]any{"n": 1}}
	v, err := rp.Evaluate(context.Background(), in)
	want := `{"phdr":{"alg":"ES384","crit":["259"],"cwt":{"iat":1700000000,"iss":"i"},"payload_hash_alg":"SHA-256","payload_location":"https://x/y","preimage_content_type":"application/json"},"uhdr":{},"details":{"n":1},"payload":"undefined"}`
	if err != nil || v.Reason != want {
		t.Fatalf("shape:\n got %s (%v)\nwant %s", v.Reason, err, want)
	}
	in.Payload = []byte{1, 2}
	v, _ = rp.Evaluate(context.Background(), in)
	if !strings.HasSuffix(v.Reason, `"payload":[1,2]}`) {
		t.Fatalf("payload as ArrayBuffer: %s", v.Reason)
	}
}

func TestRegistrationPolicyNeedsApply(t *testing.T) {
	_, err := policy.NewRegistrationPolicy(`export function check() { return true; }`, policy.Limits{})
	if !errors.Is(err, policy.ErrNoExport) {
		t.Fatalf("err = %v, want ErrNoExport", err)
	}
}

func BenchmarkCall(b *testing.B) {
	rp, err := policy.NewRegistrationPolicy(fiveChecks, policy.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	in := goodInput()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := rp.Evaluate(ctx, in); err != nil || !v.Accepted {
				b.Fatalf("%+v, %v", v, err)
			}
		}
	})
}

func BenchmarkCallSerial(b *testing.B) {
	rp, err := policy.NewRegistrationPolicy(fiveChecks, policy.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	in := goodInput()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if v, err := rp.Evaluate(ctx, in); err != nil || !v.Accepted {
			b.Fatalf("%+v, %v", v, err)
		}
	}
}
