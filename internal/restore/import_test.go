package restore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/config"
)

func testCertPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "service"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestImportRefusesBadInput: a configuration, certificate or ledger
// directory a recovery cannot use is refused with ErrRecoverInput, and the
// data directory is left without a store, a staging store or a marker.
func TestImportRefusesBadInput(t *testing.T) {
	cert := testCertPEM(t)
	cases := []struct {
		name   string
		join   bool
		cert   []byte
		ledger func(t *testing.T) string
	}{
		{"joined node", true, cert, func(t *testing.T) string { return t.TempDir() }},
		{"no certificate", false, []byte("not PEM"), func(t *testing.T) string { return t.TempDir() }},
		{"empty ledger directory", false, cert, func(t *testing.T) string { return t.TempDir() }},
		{"missing ledger directory", false, cert, func(t *testing.T) string { return filepath.Join(t.TempDir(), "nothing") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			cfg := config.Config{NodeID: 1, DataDir: data, Addr: "127.0.0.1:0", Join: c.join}
			rep, err := Import(cfg, c.ledger(t), c.cert, nil)
			if !errors.Is(err, ErrRecoverInput) {
				t.Fatalf("Import = %+v, %v; want ErrRecoverInput", rep, err)
			}
			for _, f := range []string{"store", "store.recovering", fileRecoveryPending} {
				if _, err := os.Stat(filepath.Join(data, f)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind (%v)", f, err)
				}
			}
		})
	}
}

// TestImportRefusesANetwork: a data directory that holds a network (a
// store and no pending recovery) is never imported into.
func TestImportRefusesANetwork(t *testing.T) {
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{NodeID: 1, DataDir: data, Addr: "127.0.0.1:0"}
	if _, err := Import(cfg, t.TempDir(), testCertPEM(t), nil); !errors.Is(err, ErrNetworkExists) {
		t.Fatalf("Import = %v; want ErrNetworkExists", err)
	}
}
