package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenSealer: on virtual, the key file is made on first use and the
// same key opens what it sealed afterwards; a data directory with sealed
// secrets and no key file is an error, not a new key.
func TestOpenSealer(t *testing.T) {
	dir, keyFile := t.TempDir(), filepath.Join(t.TempDir(), "seal.key")
	s, err := OpenSealer("virtual", dir, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("no key file made: %v", err)
	}
	sealed, err := s.Seal("test", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := OpenSealer("virtual", dir, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := again.Unseal("test", sealed); err != nil || string(plain) != "secret" {
		t.Fatalf("the reopened key does not open what the first sealed: %q, %v", plain, err)
	}

	if _, err := LoadOrCreateNodeKey(dir, s); err != nil { // a sealed secret in dir
		t.Fatal(err)
	}
	lost := filepath.Join(t.TempDir(), "gone.key")
	if _, err := OpenSealer("virtual", dir, lost); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("sealed secrets without their key: %v", err)
	}
	if _, err := os.Stat(lost); err == nil {
		t.Fatal("a new key was made over sealed secrets")
	}
}
