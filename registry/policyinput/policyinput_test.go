package policyinput_test

import (
	"encoding/pem"
	"reflect"
	"testing"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry/policyinput"
	gocose "github.com/veraison/go-cose"
)

// TestOf pins the mapping a policy is written against: every field of the
// protected header in the shape CCF's SCITT policies read it.
func TestOf(t *testing.T) {
	iat, svn := int64(1750000000), int64(3)
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	st := &cose.Statement{
		Alg:         gocose.AlgorithmES256,
		ContentType: int64(50),
		Kid:         []byte{0xab, 0x01},
		Crit:        []any{int64(258), "x"},
		X5Chain:     [][]byte{der, der},
		CWT:         cose.CWTClaims{Issuer: "did:x509:i", Subject: "s", IssuedAt: &iat, SVN: &svn},
		HashEnvelope: &cose.HashEnvelope{
			PayloadHashAlg:      cose.AlgorithmSHA384,
			PreimageContentType: "application/spdx+json",
			PayloadLocation:     "https://example.com/sbom",
		},
		Payload: []byte("digest"),
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	want := policy.PolicyInput{
		Protected: policy.ProtectedHeader{
			Alg: "ES256", Cty: "50", Kid: "ab01", Crit: []string{"258", "x"},
			X5Chain:        []string{certPEM, certPEM},
			CWT:            &policy.CWTClaims{Iss: "did:x509:i", Sub: "s", Iat: &iat, SVN: &svn},
			PayloadHashAlg: "SHA-384", PreimageContentType: "application/spdx+json",
			PayloadLocation: "https://example.com/sbom",
		},
		Payload: []byte("digest"),
	}
	if got := policyinput.Of(st); !reflect.DeepEqual(got, want) {
		t.Fatalf("Of:\n got %+v\nwant %+v", got, want)
	}

	// A text content type is given as is; an unknown hash algorithm and
	// a numeric preimage type by their decimal labels; no envelope, no
	// envelope fields.
	st.ContentType, st.Kid, st.Crit, st.X5Chain = "application/json", nil, nil, nil
	st.HashEnvelope = &cose.HashEnvelope{PayloadHashAlg: -99, PreimageContentType: int64(60)}
	got := policyinput.Of(st).Protected
	if got.Cty != "application/json" || got.Kid != "" || got.Crit != nil || got.X5Chain != nil ||
		got.PayloadHashAlg != "-99" || got.PreimageContentType != "60" {
		t.Fatalf("Of: %+v", got)
	}
	st.HashEnvelope = nil
	if got := policyinput.Of(st).Protected; got.PayloadHashAlg != "" || got.PreimageContentType != "" || got.PayloadLocation != "" {
		t.Fatalf("Of without a hash envelope: %+v", got)
	}
}
