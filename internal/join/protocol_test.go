package join

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"github.com/charterlog/charter/internal/attest"
)

func validJoinBody(t testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := attest.NewVirtualProvider(make([]byte, attest.MeasurementSize), nil).Evidence(t.Context(), &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		t.Fatal(err)
	}
	body, err := RequestBody("https://127.0.0.1:9", k, raw)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// A well-formed join request parses; each kind of damage is its own
// refusal.
func TestParseRequest(t *testing.T) {
	body := validJoinBody(t)
	if _, _, _, err := ParseRequest(body); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any)
		kind error
	}{
		"other url":      {func(m map[string]any) { m["url"] = "https://127.0.0.1:10" }, ErrInvalidSignature},
		"http url":       {func(m map[string]any) { m["url"] = "http://127.0.0.1:9" }, ErrInvalidRequest},
		"no key":         {func(m map[string]any) { delete(m, "node_key") }, ErrInvalidRequest},
		"unknown field":  {func(m map[string]any) { m["extra"] = 1 }, ErrInvalidRequest},
		"no signature":   {func(m map[string]any) { m["signature"] = "" }, ErrInvalidSignature},
		"other evidence": {func(m map[string]any) { m["evidence"] = "AAAA" }, ErrInvalidSignature},
	} {
		m := map[string]any{}
		for k, v := range req {
			m[k] = v
		}
		tc.edit(m)
		b, _ := json.Marshal(m)
		if _, _, _, err := ParseRequest(b); !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", name, err, tc.kind)
		}
	}
}
