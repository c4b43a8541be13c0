package apphost

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/log"
)

func testCipher(t *testing.T, fill byte) *Cipher {
	t.Helper()
	c, err := newCipher(staticSecrets{bytes.Repeat([]byte{fill}, identity.LedgerSecretSize)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCipherRoundTrip(t *testing.T) {
	c := testCipher(t, 1)
	for _, tc := range []struct{ key, value string }{
		{"alice", "100"},
		{"", "empty key"},
		{"bob", ""},
		{"\x00\xff", strings.Repeat("v", 1<<16)},
	} {
		sm, sk := c.storedMap("accounts"), c.storedKey("accounts", []byte(tc.key))
		sealed, err := c.seal(sm, sk, []byte(tc.key), []byte(tc.value))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte(tc.value)) && tc.value != "" {
			t.Errorf("%q: the value is in the clear", tc.key)
		}
		k, v, err := c.open(sm, sk, sealed)
		if err != nil {
			t.Fatalf("%q: %v", tc.key, err)
		}
		if string(k) != tc.key || string(v) != tc.value {
			t.Errorf("open = %q, %q; want %q, %q", k, v, tc.key, tc.value)
		}
	}
}

// TestCipherNames: stored names are stable for one secret (reads and writes
// meet), hide the plaintext, and differ between maps, keys and secrets.
func TestCipherNames(t *testing.T) {
	c, c2 := testCipher(t, 1), testCipher(t, 2)
	sm := c.storedMap("accounts")
	if !strings.HasPrefix(sm, privateMapPrefix) || len(sm) != len(privateMapPrefix)+32 || strings.Contains(sm, "accounts") {
		t.Errorf("stored map %q", sm)
	}
	if sm != testCipher(t, 1).storedMap("accounts") {
		t.Error("one secret names a map two ways")
	}
	if sm == c.storedMap("accounts2") || sm == c2.storedMap("accounts") {
		t.Error("two maps, or two secrets, share a stored map name")
	}
	sk := c.storedKey("accounts", []byte("alice"))
	for _, other := range [][]byte{
		c.storedKey("accounts", []byte("bob")),
		c.storedKey("other", []byte("alice")),
		// map ‖ 0x00 ‖ key: the separator keeps ("a", "b\x00c") from
		// meeting ("a\x00b", "c").
		c.storedKey("accounts\x00alice", nil),
		c2.storedKey("accounts", []byte("alice")),
	} {
		if bytes.Equal(sk, other) {
			t.Errorf("stored key %x named twice", sk)
		}
	}
}

// TestCipherRefuses: a stored value opens only under the secret that
// sealed it, at the place (stored map and key) it was sealed for, and
// unaltered.
func TestCipherRefuses(t *testing.T) {
	c := testCipher(t, 1)
	sm, sk := c.storedMap("accounts"), c.storedKey("accounts", []byte("alice"))
	sealed, err := c.seal(sm, sk, []byte("alice"), []byte("100"))
	if err != nil {
		t.Fatal(err)
	}
	bobKey := c.storedKey("accounts", []byte("bob"))
	for name, open := range map[string]func() error{
		"another secret": func() error { _, _, err := testCipher(t, 2).open(sm, sk, sealed); return err },
		"moved to another key": func() error {
			_, _, err := c.open(sm, bobKey, sealed)
			return err
		},
		"moved to another map": func() error {
			_, _, err := c.open(c.storedMap("savings"), sk, sealed)
			return err
		},
		"truncated below a nonce": func() error { _, _, err := c.open(sm, sk, sealed[:11]); return err },
		"empty":                   func() error { _, _, err := c.open(sm, sk, nil); return err },
	} {
		if open() == nil {
			t.Errorf("%s: opened", name)
		}
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sealed)
			bad[i] ^= bit
			if _, _, err := c.open(sm, sk, bad); err == nil {
				t.Fatalf("byte %d flipped (%#x): opened", i, bit)
			}
		}
	}
}

func TestCipherNeedsASecret(t *testing.T) {
	for _, secret := range [][]byte{nil, make([]byte, identity.LedgerSecretSize-1), make([]byte, identity.LedgerSecretSize+1)} {
		if _, err := newCipher(staticSecrets{secret}); err == nil {
			t.Errorf("a secret of %d bytes accepted", len(secret))
		}
	}
}

// TestStoredWritesRoundTrip: what an app writes to a private map is
// stored encrypted, and reads back (as ccf.historical's state does)
// under the same secret; public maps are stored as written.
func TestStoredWritesRoundTrip(t *testing.T) {
	c := testCipher(t, 1)
	writes := []log.Write{
		{Map: "accounts", Key: []byte("alice"), Value: []byte("100")},
		{Map: "public:rates", Key: []byte("eur"), Value: []byte("1.1")},
		{Map: "accounts", Key: []byte("gone"), Delete: true},
	}
	stored, err := storedWrites(c, writes)
	if err != nil {
		t.Fatal(err)
	}
	if stored[0].Map == "accounts" || bytes.Equal(stored[0].Key, []byte("alice")) || bytes.Contains(stored[0].Value, []byte("100")) {
		t.Errorf("private write stored in the clear: %+v", stored[0])
	}
	if stored[1].Map != "public:rates" || string(stored[1].Key) != "eur" || string(stored[1].Value) != "1.1" {
		t.Errorf("public write changed: %+v", stored[1])
	}
	if !stored[2].Delete || stored[2].Map != stored[0].Map || stored[2].Value != nil {
		t.Errorf("private delete stored as %+v", stored[2])
	}
	ws, err := newTxWritesState(c, stored)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range writes[:2] {
		v, err := ws.GetKV(w.Map, w.Key)
		if err != nil || !bytes.Equal(v, w.Value) {
			t.Errorf("%s/%s = %q, %v; want %q", w.Map, w.Key, v, err, w.Value)
		}
	}
	if _, err := newTxWritesState(testCipher(t, 2), stored); err == nil {
		t.Error("another secret read the private writes")
	}
}

// staticSecrets is one ledger secret version, 0.
type staticSecrets struct{ s []byte }

func (st staticSecrets) LedgerSecret(v uint64) ([]byte, error) {
	if v != 0 {
		return nil, fmt.Errorf("no version %d", v)
	}
	return st.s, nil
}
func (st staticSecrets) LatestLedgerSecret() (uint64, []byte, error) { return 0, st.s, nil }

// versions is a ledger secret with versions, the latest movable.
type versions struct {
	s      map[uint64][]byte
	latest uint64
}

func (vs *versions) LedgerSecret(v uint64) ([]byte, error) {
	if s, ok := vs.s[v]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("no version %d", v)
}
func (vs *versions) LatestLedgerSecret() (uint64, []byte, error) {
	return vs.latest, vs.s[vs.latest], nil
}

// TestCipherVersions: after a rekey, values written before and after read
// back; stored names and keys do not move; a value names its version, and
// another version's label does not open it; a value from before versions
// still reads.
func TestCipherVersions(t *testing.T) {
	vs := &versions{s: map[uint64][]byte{
		0: bytes.Repeat([]byte{1}, identity.LedgerSecretSize),
		1: bytes.Repeat([]byte{2}, identity.LedgerSecretSize),
	}}
	c, err := newCipher(vs)
	if err != nil {
		t.Fatal(err)
	}
	sm, sk := c.storedMap("accounts"), c.storedKey("accounts", []byte("alice"))
	old, err := c.seal(sm, sk, []byte("alice"), []byte("before"))
	if err != nil {
		t.Fatal(err)
	}
	vs.latest = 1
	c2, err := newCipher(vs)
	if err != nil {
		t.Fatal(err)
	}
	if c2.storedMap("accounts") != sm || !bytes.Equal(c2.storedKey("accounts", []byte("alice")), sk) {
		t.Fatal("a rekey moved stored names or keys")
	}
	neu, err := c.seal(sm, sk, []byte("alice"), []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if old[8] != 0 || neu[8] != 1 {
		t.Fatalf("values name versions %d and %d, want 0 and 1", old[8], neu[8])
	}
	for want, sealed := range map[string][]byte{"before": old, "after": neu} {
		if _, v, err := c2.open(sm, sk, sealed); err != nil || string(v) != want {
			t.Fatalf("%s: %q, %v", want, v, err)
		}
	}
	relabelled := bytes.Clone(neu)
	relabelled[8] = 0
	if _, _, err := c2.open(sm, sk, relabelled); err == nil {
		t.Fatal("a value relabelled with another version opened")
	}
	unknown := bytes.Clone(neu)
	unknown[8] = 7
	if _, _, err := c2.open(sm, sk, unknown); err == nil || !strings.Contains(err.Error(), "version 7") {
		t.Fatalf("unknown version: %v", err)
	}
	// The format before versions: nonce ‖ AES-GCM under version 0.
	aead, _ := c.aead(0, nil)
	nonce := make([]byte, aead.NonceSize())
	legacy := aead.Seal(bytes.Clone(nonce), nonce, append([]byte{0, 0, 0, 5}, "alicelegacy"...), additionalData(sm, sk))
	if k, v, err := c2.open(sm, sk, legacy); err != nil || string(k) != "alice" || string(v) != "legacy" {
		t.Fatalf("legacy value: %q %q %v", k, v, err)
	}
}
