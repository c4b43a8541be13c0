package recovery

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var testKeys = map[string]*rsa.PrivateKey{}

func memberKey(t testing.TB, id string) *rsa.PrivateKey {
	t.Helper()
	if k, ok := testKeys[id]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	testKeys[id] = k
	return k
}

func members(t testing.TB, ids ...string) []Member {
	var out []Member
	for _, id := range ids {
		out = append(out, Member{ID: id, EncryptionKey: &memberKey(t, id).PublicKey})
	}
	return out
}

func decrypted(t testing.TB, s *Sharing, id string) []byte {
	t.Helper()
	share, err := DecryptShare(memberKey(t, id), s.Encrypted[id])
	if err != nil {
		t.Fatal(err)
	}
	return share
}

// Any threshold of the members' shares recovers the key, and the key
// unwraps what it wrapped; fewer do not.
func TestSplitCombine(t *testing.T) {
	k := NewKey(rand.Reader)
	wrapped, err := k.Wrap([]byte("ledger secret"), []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Split(rand.Reader, k, 2, members(t, "m0", "m1", "m2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Encrypted) != 3 || len(s.Commitment) != 2*elemSize {
		t.Fatalf("sharing: %d shares, commitment of %d bytes", len(s.Encrypted), len(s.Commitment))
	}
	shares := map[string][]byte{}
	for _, id := range []string{"m0", "m1", "m2"} {
		shares[id] = decrypted(t, s, id)
		if err := s.Verify(shares[id]); err != nil {
			t.Fatalf("%s's share: %v", id, err)
		}
	}
	for _, pair := range [][2]string{{"m0", "m1"}, {"m1", "m2"}, {"m2", "m0"}} {
		got, err := s.Combine([][]byte{shares[pair[0]], shares[pair[1]]})
		if err != nil || !got.Equal(k) {
			t.Fatalf("%v: %v", pair, err)
		}
		secret, err := got.Unwrap(wrapped, []byte("v1"))
		if err != nil || string(secret) != "ledger secret" {
			t.Fatalf("unwrap: %q, %v", secret, err)
		}
	}
	if _, err := s.Combine([][]byte{shares["m0"]}); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("one share of two: %v", err)
	}
	if _, err := s.Combine([][]byte{shares["m0"], shares["m0"]}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("the same share twice: %v", err)
	}
}

// A share of another sharing, or an altered share, is refused on its own,
// when it is submitted.
func TestVerifyRefuses(t *testing.T) {
	ms := members(t, "m0", "m1")
	s, err := Split(rand.Reader, NewKey(rand.Reader), 2, ms)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Split(rand.Reader, NewKey(rand.Reader), 2, ms)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(decrypted(t, other, "m0")); !errors.Is(err, ErrBadShare) {
		t.Errorf("a share of another key: %v", err)
	}
	good := decrypted(t, s, "m0")
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 1
		if err := s.Verify(bad); err == nil {
			t.Fatalf("share with byte %d flipped verified", i)
		}
	}
	for _, b := range [][]byte{nil, good[:10], append(bytes.Clone(good), 0), make([]byte, ShareSize)} {
		if err := s.Verify(b); err == nil {
			t.Fatalf("malformed share %x verified", b)
		}
	}
	if _, err := DecryptShare(memberKey(t, "m1"), s.Encrypted["m0"]); err == nil {
		t.Error("m1's key decrypted m0's share")
	}
	if _, err := NewKey(rand.Reader).Unwrap([]byte("short"), nil); !errors.Is(err, ErrUnwrap) {
		t.Errorf("unwrap of garbage: %v", err)
	}
	k := NewKey(rand.Reader)
	w, _ := k.Wrap([]byte("x"), []byte("v1"))
	if _, err := NewKey(rand.Reader).Unwrap(w, []byte("v1")); !errors.Is(err, ErrUnwrap) {
		t.Errorf("another key unwrapped: %v", err)
	}
	if _, err := k.Unwrap(w, []byte("v2")); !errors.Is(err, ErrUnwrap) {
		t.Errorf("another label unwrapped: %v", err)
	}
}

func TestSplitBounds(t *testing.T) {
	k := NewKey(rand.Reader)
	ms := members(t, "m0", "m1")
	for _, th := range []int{0, 3, -1} {
		if _, err := Split(rand.Reader, k, th, ms); !errors.Is(err, ErrThreshold) {
			t.Errorf("threshold %d of 2: %v", th, err)
		}
	}
	if _, err := Split(rand.Reader, k, 1, append(ms, ms[0])); err == nil {
		t.Error("a member listed twice was accepted")
	}
	if _, err := Split(rand.Reader, k, 1, []Member{{ID: "x"}}); err == nil {
		t.Error("a member without an encryption key was accepted")
	}
	s, err := Split(rand.Reader, k, 1, ms)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Combine([][]byte{decrypted(t, s, "m1")}); err != nil || !got.Equal(k) {
		t.Fatalf("threshold 1: %v", err)
	}
}

// A CCF member decrypts its share with openssl, as CCF's documentation
// says; the same works here.
func TestShareDecryptsWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl on this machine")
	}
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(memberKey(t, "m0"))
	if err != nil {
		t.Fatal(err)
	}
	keyPath, inPath := filepath.Join(dir, "enc.pem"), filepath.Join(dir, "share.enc")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Split(rand.Reader, NewKey(rand.Reader), 1, members(t, "m0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inPath, s.Encrypted["m0"], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "pkeyutl", "-decrypt", "-inkey", keyPath, "-in", inPath,
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, decrypted(t, s, "m0")) {
		t.Fatal("openssl decrypted another share")
	}
	if err := s.Verify(out); err != nil {
		t.Fatal(err)
	}
}

func FuzzVerify(f *testing.F) {
	s, err := Split(rand.Reader, NewKey(rand.Reader), 2, members(f, "m0", "m1"))
	if err != nil {
		f.Fatal(err)
	}
	good := decrypted(f, s, "m0")
	f.Add(good)
	f.Add(make([]byte, ShareSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s.Verify(b) == nil && !bytes.Equal(b, good) && !bytes.Equal(b, decrypted(t, s, "m1")) {
			t.Fatalf("a share that is none of the members' verified: %x", b)
		}
	})
}

// A share's id has one encoding: the same share written another way (its
// id plus the group order, which is the same scalar) is refused, so
// duplicates are found by comparing ids.
func TestNonCanonicalShareRefused(t *testing.T) {
	s, err := Split(rand.Reader, NewKey(rand.Reader), 1, members(t, "m0"))
	if err != nil {
		t.Fatal(err)
	}
	good := decrypted(t, s, "m0")
	// l = 2^252 + 27742317777372353535851937790883648493, little-endian.
	order := []byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	bad := bytes.Clone(good)
	carry := 0
	for i := range scalarSize {
		v := int(bad[i]) + int(order[i]) + carry
		bad[i], carry = byte(v), v>>8
	}
	if err := s.Verify(bad); err == nil {
		t.Fatal("a non-canonical encoding of a share verified")
	}
}
