package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/govwire"
)

// TestGenesisWrites: the first node records itself Trusted with its key,
// and approves its virtual measurement only on a development network;
// evidence that is not for its key is refused.
func TestGenesisWrites(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	m := make([]byte, attest.MeasurementSize)
	m[0] = 0x42
	ev, err := attest.NewVirtualProvider(m, nil).Evidence(context.Background(), &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []bool{true, false} {
		w, err := GenesisWrites(context.Background(), 1, "https://127.0.0.1:1", &key.PublicKey, ev, attest.Policy{}, dev)
		if err != nil {
			t.Fatal(err)
		}
		if w[0].Map != govwire.MapNodesInfo || string(w[0].Key) != "1" {
			t.Fatalf("first write %s[%s]", w[0].Map, w[0].Key)
		}
		var r NodeRecord
		if err := json.Unmarshal(w[0].Value, &r); err != nil || r.Status != NodeTrusted || r.PublicKey != PublicKeyPEM(&key.PublicKey) ||
			r.URL != "https://127.0.0.1:1" || r.Measurement != hex.EncodeToString(m) {
			t.Fatalf("record %+v, %v", r, err)
		}
		switch {
		case dev && (len(w) != 2 || w[1].Map != govwire.MapVirtualMeasurements || string(w[1].Key) != hex.EncodeToString(m)):
			t.Fatalf("development: %d writes, want the record and the approved measurement", len(w))
		case !dev && len(w) != 1:
			t.Fatalf("not development: %d writes; virtual evidence must not approve itself", len(w))
		}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := GenesisWrites(context.Background(), 1, "https://127.0.0.1:1", &other.PublicKey, ev, attest.Policy{}, true); err == nil {
		t.Fatal("evidence bound to another key was accepted")
	}
}
