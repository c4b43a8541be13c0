package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	labi "github.com/google/go-sev-guest/client/linuxabi"
	sgtest "github.com/google/go-sev-guest/testing"
)

func sealer(t *testing.T, kind byte, fill byte) *Sealer {
	t.Helper()
	s, err := New(kind, bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	s := sealer(t, KindVirtual, 1)
	secret := []byte("the ledger secret")
	blob, err := s.Seal("ledger secret", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, secret) || !IsSealed(blob) {
		t.Fatalf("sealed blob holds the secret, or is not marked sealed: %q", blob)
	}
	again, _ := s.Seal("ledger secret", secret)
	if bytes.Equal(blob, again) {
		t.Fatal("two seals of the same secret are equal: the nonce is not fresh")
	}
	got, err := s.Unseal("ledger secret", blob)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unseal: %q, %v", got, err)
	}
}

// A blob opens only under its key, for its purpose, unaltered; each
// refusal says which.
func TestUnsealRefuses(t *testing.T) {
	s := sealer(t, KindVirtual, 1)
	blob, err := s.Seal("service key", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal("note key", blob); !errors.Is(err, ErrDamaged) {
		t.Errorf("another purpose: %v, want ErrDamaged", err)
	}
	if _, err := sealer(t, KindVirtual, 2).Unseal("service key", blob); !errors.Is(err, ErrOtherKey) {
		t.Errorf("another key: %v, want ErrOtherKey", err)
	}
	if _, err := sealer(t, KindSNP, 1).Unseal("service key", blob); !errors.Is(err, ErrOtherKey) {
		t.Errorf("same bytes, another kind: %v, want ErrOtherKey", err)
	}
	for i := range blob {
		bad := bytes.Clone(blob)
		bad[i] ^= 0x80
		if _, err := s.Unseal("service key", bad); err == nil {
			t.Fatalf("flipped byte %d unsealed", i)
		}
	}
	for n := 0; n < len(blob); n++ {
		if _, err := s.Unseal("service key", blob[:n]); err == nil {
			t.Fatalf("truncation to %d unsealed", n)
		}
	}
	if _, err := s.Unseal("service key", []byte("-----BEGIN PRIVATE KEY-----")); !errors.Is(err, ErrDamaged) {
		t.Errorf("a clear file: %v, want ErrDamaged", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seal.key")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := GenerateKeyFile(path); err == nil {
		t.Fatal("an existing sealing key was replaced")
	}
	a, err := FileKey(path)
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := a.Seal("p", []byte("x"))
	b, err := FileKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Unseal("p", blob); err != nil || string(got) != "x" {
		t.Fatalf("reloaded key: %q, %v", got, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FileKey(path); err == nil {
		t.Fatal("a sealing key readable by others was accepted")
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FileKey(bad); err == nil {
		t.Fatal("a malformed key file was accepted")
	}
	if _, err := FileKey(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing key file was accepted")
	}
}

// snpDevice is go-sev-guest's test device answering derived-key requests
// of one shape (the one SNPKey must make) with key; any other request is
// an error, so the test also pins what SNPKey asks the firmware for.
func snpDevice(vmpl uint32, key byte) *sgtest.Device {
	req := &labi.SnpDerivedKeyReqABI{
		RootKeySelect:    0, // VCEK: the chip's own key
		GuestFieldSelect: 1<<3 | 1<<0,
		Vmpl:             vmpl,
	}
	return &sgtest.Device{Keys: map[string][]byte{sgtest.DerivedKeyRequestToString(req): bytes.Repeat([]byte{key}, 32)}}
}

// On sev-snp the sealing key comes from the firmware, bound to the chip
// (VCEK), the measurement and the guest policy: the same guest derives it
// again; another measurement (here: another key from the device) cannot
// unseal.
func TestSNPKey(t *testing.T) {
	s, err := SNPKey(snpDevice(0, 7), 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind() != KindSNP {
		t.Fatalf("kind %q", s.Kind())
	}
	blob, err := s.Seal("ledger secret", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	same, err := SNPKey(snpDevice(0, 7), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := same.Unseal("ledger secret", blob); err != nil || string(got) != "secret" {
		t.Fatalf("the same guest: %q, %v", got, err)
	}
	other, err := SNPKey(snpDevice(0, 8), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Unseal("ledger secret", blob); !errors.Is(err, ErrOtherKey) {
		t.Fatalf("another measurement or chip: %v, want ErrOtherKey", err)
	}
	// At VMPL 1 the request names VMPL 1.
	if _, err := SNPKey(snpDevice(1, 7), 1); err != nil {
		t.Fatalf("vmpl 1: %v", err)
	}
	if _, err := SNPKey(snpDevice(1, 7), 0); err == nil {
		t.Fatal("a request the device does not answer succeeded")
	}
}

func FuzzUnseal(f *testing.F) {
	s, _ := New(KindVirtual, bytes.Repeat([]byte{1}, 32))
	blob, _ := s.Seal("p", []byte("secret"))
	f.Add(blob)
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		if pt, err := s.Unseal("p", b); err == nil && !bytes.Equal(pt, []byte("secret")) {
			// Only blobs sealed under s open; the fuzzer cannot forge one.
			t.Fatalf("unsealed %q", pt)
		}
	})
}
