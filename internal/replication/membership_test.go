package replication

import (
	"strings"
	"testing"
)

// TestMembershipRefusesDuplicateKeys: a configuration change's context and
// a node's record are decoded under the CBOR policy: two URLs for one node
// are refused, not resolved by whichever the decoder kept.
func TestMembershipRefusesDuplicateKeys(t *testing.T) {
	ctx, err := encodePeerContext("https://a:1")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := decodePeerContext(ctx); err != nil || u != "https://a:1" {
		t.Fatalf("round trip: %q, %v", u, err)
	}
	// {1: "https://a:1", 1: "https://b:1"}
	dup := []byte{0xa2, 0x01, 0x6b}
	dup = append(dup, "https://a:1"...)
	dup = append(dup, 0x01, 0x6b)
	dup = append(dup, "https://b:1"...)
	if _, err := decodePeerContext(dup); err == nil || !strings.Contains(err.Error(), "duplicate map key") {
		t.Errorf("duplicate URL: %v", err)
	}
}
