package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/devpki"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry/policyinput"
	gocose "github.com/veraison/go-cose"
)

// benchStatement is a verified statement as the bench sends it: ES256, a
// did:x509 issuer with a three-certificate x5chain, a subject, an SPDX
// content type and a 1 KiB payload.
func benchStatement(tb testing.TB) *cose.Statement {
	tb.Helper()
	var ders [][]byte
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
			ders = append(ders, c.Certs[0].Raw)
		}
		ders = append(ders, c.Certs[1].Raw)
	}
	return &cose.Statement{
		Alg:         gocose.AlgorithmES256,
		ContentType: "application/spdx+json",
		X5Chain:     ders,
		CWT:         cose.CWTClaims{Issuer: iss, Subject: "pkg:npm/left-pad@1.3.0"},
		Payload:     make([]byte, 1024),
	}
}

func benchPolicy(tb testing.TB) *RegistrationPolicy {
	tb.Helper()
	src, err := os.ReadFile("../spec/policies/realistic-five-checks.js")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := policy.NewRegistrationPolicy(string(src), policy.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return &RegistrationPolicy{Policy: p}
}

func TestEvaluatePolicyOnBenchStatement(t *testing.T) {
	if prob := evaluatePolicy(context.Background(), benchPolicy(t), benchStatement(t)); prob != nil {
		t.Fatalf("the bench's statement is refused by the bench's policy: %+v", prob)
	}
}

func BenchmarkPolicyInput(b *testing.B) {
	st := benchStatement(b)
	b.ReportAllocs()
	for b.Loop() {
		policyinput.Of(st)
	}
}

func BenchmarkEvaluatePolicySerial(b *testing.B) {
	rp, st, ctx := benchPolicy(b), benchStatement(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if prob := evaluatePolicy(ctx, rp, st); prob != nil {
			b.Fatal(prob)
		}
	}
}

func BenchmarkEvaluatePolicyParallel(b *testing.B) {
	rp, st, ctx := benchPolicy(b), benchStatement(b), context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if prob := evaluatePolicy(ctx, rp, st); prob != nil {
				b.Error(prob)
				return
			}
		}
	})
}
