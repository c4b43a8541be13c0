package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/charterlog/charter/internal/seal"
)

func testSealer(t *testing.T, fill byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(seal.KindVirtual, bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// secretsOf are byte strings that must never be in a file in clear: the
// service key's scalar and its PKCS#8 form, the node key's, the ledger
// secret, the note signer key.
func secretsOf(t *testing.T, id *Identity, dir string, s *seal.Sealer) map[string][]byte {
	t.Helper()
	node, err := LoadOrCreateNodeKey(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{
		"ledger secret":   id.LedgerSecret,
		"note signer key": []byte(id.NoteSignerKey()),
		"PEM private key": []byte("PRIVATE KEY"),
	}
	for name, k := range map[string]interface{ Bytes() ([]byte, error) }{"service key": id.ServiceKey, "node key": node} {
		d, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = d
	}
	der, _ := x509.MarshalPKCS8PrivateKey(id.ServiceKey)
	out["service key PKCS#8"] = der
	return out
}

// scanClear fails the test if any file under dir holds a secret in clear.
func scanClear(t *testing.T, dir string, secrets map[string][]byte) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, sec := range secrets {
			if len(sec) > 0 && bytes.Contains(b, sec) {
				t.Errorf("%s holds the %s in clear", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSecretsSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	s := testSealer(t, 1)
	id, err := LoadOrCreate(dir, "charter:test", true, s)
	if err != nil {
		t.Fatal(err)
	}
	scanClear(t, dir, secretsOf(t, id, dir, s))
	again, err := Load(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if !again.ServiceKey.Equal(id.ServiceKey) || !bytes.Equal(again.LedgerSecret, id.LedgerSecret) || again.NoteSignerKey() != id.NoteSignerKey() {
		t.Fatal("the secrets read back differ")
	}
	// Under another key (another chip, code or key file) the node cannot
	// read them, and says so.
	if _, err := Load(dir, testSealer(t, 2)); !errors.Is(err, seal.ErrOtherKey) {
		t.Fatalf("another sealing key: %v, want ErrOtherKey", err)
	}
}

// A data directory from before sealing (the secrets in clear files) is
// sealed on the first start, and the clear files are gone.
func TestClearSecretsAreSealed(t *testing.T) {
	old := t.TempDir()
	s := testSealer(t, 1)
	id, err := LoadOrCreate(old, "charter:test", true, s)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := LoadOrCreateNodeKey(old, s)
	// Write the clear files an older node kept.
	dir := t.TempDir()
	cert, _ := os.ReadFile(filepath.Join(old, FileServiceCert))
	os.WriteFile(filepath.Join(dir, FileServiceCert), cert, 0o644)
	svc, _ := x509.MarshalPKCS8PrivateKey(id.ServiceKey)
	nk, _ := x509.MarshalPKCS8PrivateKey(node)
	for name, b := range map[string][]byte{
		"service_key.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: svc}),
		"node_key.pem":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: nk}),
		"note_key.txt":    []byte(id.NoteSignerKey() + "\n" + id.NoteVerifier + "\n"),
		"ledger_secret":   id.LedgerSecret,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Load(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	gotNode, err := LoadOrCreateNodeKey(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ServiceKey.Equal(id.ServiceKey) || !gotNode.Equal(node) || !bytes.Equal(got.LedgerSecret, id.LedgerSecret) {
		t.Fatal("the sealed secrets differ from the clear ones")
	}
	for clear := range map[string]bool{"service_key.pem": true, "node_key.pem": true, "note_key.txt": true, "ledger_secret": true} {
		if _, err := os.Stat(filepath.Join(dir, clear)); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", clear, err)
		}
	}
	scanClear(t, dir, secretsOf(t, got, dir, s))
}

// A joined node keeps what it was released, sealed, and Load finds it.
func TestStoreReleased(t *testing.T) {
	src := t.TempDir()
	s := testSealer(t, 1)
	id, err := LoadOrCreate(src, "charter:test", true, s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, _ := os.ReadFile(filepath.Join(src, FileServiceCert))
	os.WriteFile(filepath.Join(dir, FileServiceCert), cert, 0o644)
	os.WriteFile(filepath.Join(dir, FileNoteVerifier), []byte(id.NoteVerifier+"\n"), 0o644)
	other := testSealer(t, 3)
	if pub, err := Load(dir, other); err != nil || pub.HasSecrets() {
		t.Fatalf("before the release: %v, holds secrets %v", err, pub != nil && pub.HasSecrets())
	}
	der, _ := x509.MarshalPKCS8PrivateKey(id.ServiceKey)
	if err := StoreReleased(dir, other, der, id.NoteSignerKey(), id.NoteVerifier, id.LedgerSecret); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, other)
	if err != nil || !got.HasSecrets() || !got.ServiceKey.Equal(id.ServiceKey) {
		t.Fatalf("after the release: %v", err)
	}
	scanClear(t, dir, secretsOf(t, got, dir, other))
}
