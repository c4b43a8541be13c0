package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
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
	j, err := newJoiner(t.TempDir(), "https://127.0.0.1:9", k, ev)
	if err != nil {
		t.Fatal(err)
	}
	return j.body
}

// A well-formed join request parses; each kind of damage is its own
// refusal.
func TestParseJoinRequest(t *testing.T) {
	body := validJoinBody(t)
	if _, _, _, p := parseJoinRequest(body); p != nil {
		t.Fatalf("valid request: %+v", p)
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit  func(map[string]any)
		title string
	}{
		"other url":      {func(m map[string]any) { m["url"] = "https://127.0.0.1:10" }, "InvalidSignature"},
		"http url":       {func(m map[string]any) { m["url"] = "http://127.0.0.1:9" }, "InvalidInput"},
		"no key":         {func(m map[string]any) { delete(m, "node_key") }, "InvalidInput"},
		"unknown field":  {func(m map[string]any) { m["extra"] = 1 }, "InvalidInput"},
		"no signature":   {func(m map[string]any) { m["signature"] = "" }, "InvalidSignature"},
		"other evidence": {func(m map[string]any) { m["evidence"] = "AAAA" }, "InvalidSignature"},
	} {
		m := map[string]any{}
		for k, v := range req {
			m[k] = v
		}
		tc.edit(m)
		b, _ := json.Marshal(m)
		if _, _, _, p := parseJoinRequest(b); p == nil || p.Title != tc.title {
			t.Errorf("%s: %+v, want %s", name, p, tc.title)
		}
	}
}
