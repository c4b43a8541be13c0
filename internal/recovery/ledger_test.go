package recovery

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"
)

func randSecret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// A chain of three versions unwinds from the latest alone; a record
// altered or out of place is refused.
func TestUnchain(t *testing.T) {
	s := [][]byte{randSecret(t), randSecret(t), randSecret(t)}
	var recs []SecretRecord
	for v := uint64(1); v < 3; v++ {
		w, err := WrapPrevious(s[v], s[v-1], v-1)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, SecretRecord{Version: v, WrappedPrevious: w, Check: Check(s[v], v)})
	}
	got, err := Unchain(s[2], recs)
	if err != nil {
		t.Fatal(err)
	}
	for v := range s {
		if !bytes.Equal(got[v], s[v]) {
			t.Fatalf("version %d differs", v)
		}
	}
	if _, err := Unchain(s[1], recs); !errors.Is(err, ErrCheck) {
		t.Fatalf("wrong latest secret: %v, want ErrCheck", err)
	}
	if _, err := UnwrapPrevious(s[2], recs[1].WrappedPrevious, 0); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("wrong label: %v, want ErrUnwrap", err)
	}
	bad := append([]SecretRecord(nil), recs...)
	bad[0].Version = 2
	if _, err := Unchain(s[2], bad); err == nil {
		t.Fatal("a record out of place was accepted")
	}
}

// A secret sealed to a node opens with its key, for its id and version
// only.
func TestSealForNode(t *testing.T) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	s := randSecret(t)
	c, err := SealForNode(k.PublicKey(), 7, 3, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenForNode(k, 7, 3, c)
	if err != nil || !bytes.Equal(got, s) {
		t.Fatalf("open: %v", err)
	}
	if _, err := OpenForNode(k, 8, 3, c); err == nil {
		t.Fatal("opened for another node id")
	}
	if _, err := OpenForNode(k, 7, 2, c); err == nil {
		t.Fatal("opened as another version")
	}
	if _, err := OpenForNode(other, 7, 3, c); err == nil {
		t.Fatal("opened with another key")
	}
}

// The basis changes with the threshold, the version, the members and their
// keys, and not with the members' order.
func TestBasis(t *testing.T) {
	a := BasisMember{ID: "a", KeyPEM: []byte("ka")}
	b := BasisMember{ID: "b", KeyPEM: []byte("kb")}
	base := Basis(2, 0, []BasisMember{a, b})
	if Basis(2, 0, []BasisMember{b, a}) != base {
		t.Fatal("order changed the basis")
	}
	for name, other := range map[string]string{
		"threshold": Basis(1, 0, []BasisMember{a, b}),
		"version":   Basis(2, 1, []BasisMember{a, b}),
		"members":   Basis(2, 0, []BasisMember{a}),
		"key":       Basis(2, 0, []BasisMember{a, {ID: "b", KeyPEM: []byte("kb2")}}),
	} {
		if other == base {
			t.Fatalf("%s did not change the basis", name)
		}
	}
}
