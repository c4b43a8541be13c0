package genesis

import (
	"strings"
	"testing"
)

// TestUnmarshalGenesisRefusesDuplicateKeys: two issuers in one genesis
// would let two readers disagree on the service's name.
func TestUnmarshalGenesisRefusesDuplicateKeys(t *testing.T) {
	good, err := (&Genesis{Issuer: "a", CreatedAt: 1}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if g, err := Unmarshal(good); err != nil || g.Issuer != "a" {
		t.Fatalf("round trip: %+v, %v", g, err)
	}
	// One more pair than the head says, repeating key 1 (Issuer).
	if good[0] < 0xa0 || good[0] >= 0xb7 {
		t.Fatalf("%x is not a short map", good)
	}
	dup := append([]byte{good[0] + 1}, good[1:]...)
	dup = append(dup, 0x01, 0x61, 'b')
	if _, err := Unmarshal(dup); err == nil || !strings.Contains(err.Error(), "duplicate map key") {
		t.Errorf("duplicate issuer: %v", err)
	}
}
