package policy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/devpki"
	"github.com/charterlog/charter/policy"
)

// realisticInput is a statement as the bench sends it: an ES256 did:x509
// publisher with a three-certificate chain, CWT iss and sub, an SPDX
// content type and a 1 KiB payload.
func realisticInput(tb testing.TB) policy.PolicyInput {
	tb.Helper()
	var pems []string
	var iss string
	for i, cn := range []string{"publisher", "intermediate"} {
		leaf, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c, err := devpki.New(cn, leaf, ca, time.Unix(1700000000, 0), 24*time.Hour, time.Hour)
		if err != nil {
			tb.Fatal(err)
		}
		if i == 0 {
			iss = c.Issuer
			pems = append(pems, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certs[0].Raw})))
		}
		pems = append(pems, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certs[1].Raw})))
	}
	return policy.PolicyInput{
		Protected: policy.ProtectedHeader{
			Alg: "ES256", Cty: "application/spdx+json",
			X5Chain: pems,
			CWT:     &policy.CWTClaims{Iss: iss, Sub: "pkg:npm/left-pad@1.3.0"},
		},
		Payload: make([]byte, 1024),
	}
}

// realisticPolicy is the policy make bench-policy measures.
func realisticPolicy(tb testing.TB) *policy.RegistrationPolicy {
	tb.Helper()
	src, err := os.ReadFile("../spec/policies/realistic-five-checks.js")
	if err != nil {
		tb.Fatal(err)
	}
	rp, err := policy.NewRegistrationPolicy(string(src), policy.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return rp
}

func BenchmarkRealisticSerial(b *testing.B) {
	rp, in, ctx := realisticPolicy(b), realisticInput(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if v, err := rp.Evaluate(ctx, in); err != nil || !v.Accepted {
			b.Fatalf("%+v, %v", v, err)
		}
	}
}

func BenchmarkRealisticParallel(b *testing.B) {
	rp, in, ctx := realisticPolicy(b), realisticInput(b), context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := rp.Evaluate(ctx, in); err != nil || !v.Accepted {
				b.Errorf("%+v, %v", v, err)
				return
			}
		}
	})
}
