package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/seal"
)

// unsealed reads the secret file name of the node whose data directory is
// dataDir, unsealed with its sealing key (the default, dataDir.seal.key:
// outside the data directory).
func unsealed(t *testing.T, dataDir, name string) []byte {
	t.Helper()
	s, err := seal.FileKey(filepath.Clean(dataDir) + ".seal.key")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Unseal(name, mustRead(t, filepath.Join(dataDir, name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// privateScalar is the private key's scalar, as it would sit in any
// encoding of it, and its PKCS#8 DER.
func privateForms(t *testing.T, pemBytes []byte) [][]byte {
	t.Helper()
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	d, err := k.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{d, blk.Bytes}
}

// TestNoSecretInClear: after a network of three nodes has been created,
// joined and used, no file in any node's data directory (the store's
// tables and logs included) holds the service key, a node key or the
// ledger secret in clear: they are sealed under keys kept outside.
func TestNoSecretInClear(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	pub := newPublisher(t, "e2e sealed publisher")
	h := &history{}
	oneByOne(t, c, pub, h)(6, 1, 2, 3)
	c.waitSettled(30*time.Second, 1, 2, 3)

	secrets := map[string][]byte{}
	for i := 1; i <= 3; i++ {
		dir := c.node(i).dataDir
		for j, f := range privateForms(t, unsealed(t, dir, "node_key.sealed")) {
			secrets[filepath.Base(dir)+" node key "+string(rune('a'+j))] = f
		}
	}
	dir1 := c.node(1).dataDir
	for j, f := range privateForms(t, unsealed(t, dir1, "service_key.sealed")) {
		secrets["service key "+string(rune('a'+j))] = f
	}
	secrets["ledger secret"] = unsealed(t, dir1, "ledger_secret.sealed")
	// Every trusted node holds the same service secrets.
	for i := 2; i <= 3; i++ {
		if !bytes.Equal(unsealed(t, c.node(i).dataDir, "ledger_secret.sealed"), secrets["ledger secret"]) {
			t.Fatalf("node %d holds another ledger secret", i)
		}
	}
	for i := 1; i <= 3; i++ {
		c.stop(i) // so that the store's files are complete
	}
	scanned := 0
	for i := 1; i <= 3; i++ {
		err := filepath.WalkDir(c.node(i).dataDir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			scanned++
			for name, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s holds the %s in clear", path, name)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("scanned %d files in 3 data directories for %d secrets: none in clear", scanned, len(secrets))
}
