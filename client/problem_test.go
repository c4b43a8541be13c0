package client_test

import (
	"testing"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/client"
)

// TestParseProblem: a concise problem details body gives its title and
// detail; anything else is not a problem.
func TestParseProblem(t *testing.T) {
	body, err := cbor.Marshal(map[int]string{-1: "PolicyFailed", -2: "issuer not allowed"})
	if err != nil {
		t.Fatal(err)
	}
	if title, detail, ok := client.ParseProblem(body); !ok || title != "PolicyFailed" || detail != "issuer not allowed" {
		t.Fatalf("ParseProblem: %q %q %v", title, detail, ok)
	}
	for _, b := range [][]byte{[]byte("503 Service Unavailable\n"), nil, {0xa1, 0x20}} {
		if title, _, ok := client.ParseProblem(b); ok && title != "" {
			t.Errorf("ParseProblem(%x) = %q, a problem", b, title)
		}
	}
}
