package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/charterlog/charter/internal/seal"
)

// The later ledger secrets round-trip sealed: the file never holds one in
// clear, another sealing key does not open it, and a malformed entry is
// refused.
func TestLaterLedgerSecrets(t *testing.T) {
	dir := t.TempDir()
	s := testSealer(t, 1)
	if got, err := LoadLaterLedgerSecrets(dir, s); err != nil || len(got) != 0 {
		t.Fatalf("no file: %v %v", got, err)
	}
	want := map[uint64][]byte{1: bytes.Repeat([]byte{0xa1}, LedgerSecretSize), 2: bytes.Repeat([]byte{0xb2}, LedgerSecretSize)}
	if err := StoreLaterLedgerSecrets(dir, s, want); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileLaterLedgerSecrets))
	if err != nil {
		t.Fatal(err)
	}
	for v, secret := range want {
		if bytes.Contains(raw, secret) {
			t.Fatalf("version %d in clear", v)
		}
	}
	got, err := LoadLaterLedgerSecrets(dir, s)
	if err != nil || len(got) != 2 || !bytes.Equal(got[1], want[1]) || !bytes.Equal(got[2], want[2]) {
		t.Fatalf("read back %v, %v", got, err)
	}
	if _, err := LoadLaterLedgerSecrets(dir, testSealer(t, 2)); !errors.Is(err, seal.ErrOtherKey) {
		t.Fatalf("another sealing key: %v, want ErrOtherKey", err)
	}
	if !HoldsSealed(dir) {
		t.Fatal("HoldsSealed does not count the later secrets")
	}
	for name, bad := range map[string]map[uint64][]byte{
		"version 0":    {0: want[1]},
		"short secret": {3: []byte("short")},
	} {
		if err := StoreLaterLedgerSecrets(dir, s, bad); err == nil {
			t.Errorf("%s stored", name)
		}
	}
	// What another program sealed under the same key must still parse.
	sealed, _ := s.Seal(FileLaterLedgerSecrets, []byte(`{"x": "AAAA"}`))
	if err := os.WriteFile(filepath.Join(dir, FileLaterLedgerSecrets), sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLaterLedgerSecrets(dir, s); err == nil {
		t.Fatal("a malformed entry was read")
	}
}
