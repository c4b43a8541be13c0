package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/seal"
)

// The secrets' files, sealed (internal/seal) under the node's sealing key:
// none of them is ever on disk in clear.
const (
	FileServiceKey   = "service_key.sealed"
	FileNoteKey      = "note_key.sealed"
	FileLedgerSecret = "ledger_secret.sealed"
	fileNodeKey      = "node_key.sealed"
)

// clearNames are the files the secrets were kept in, in clear, before
// they were sealed. A node started on such a data directory seals each
// and removes the clear file.
var clearNames = map[string]string{
	FileServiceKey:   "service_key.pem",
	FileNoteKey:      "note_key.txt",
	FileLedgerSecret: "ledger_secret",
	fileNodeKey:      "node_key.pem",
}

// SecretFiles lists every file that holds a secret, sealed.
func SecretFiles() []string {
	return []string{FileServiceKey, FileNoteKey, FileLedgerSecret, FileLaterLedgerSecrets, fileNodeKey}
}

// HoldsSealed reports whether dir holds any sealed secret: a node that
// lost its sealing key must not make a new one (the secrets would be
// lost), but say so.
func HoldsSealed(dir string) bool {
	for _, name := range SecretFiles() {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// readSecret returns the secret in dir/name, unsealed; fs.ErrNotExist if
// there is none. A secret still in its clear file is sealed first.
//
// Crash reasoning for that migration: the sealed file is written (synced)
// before the clear one is removed; a crash between leaves both, and the
// next read takes the sealed one and removes the clear one.
func readSecret(s *seal.Sealer, dir, name string) ([]byte, error) {
	clearPath := filepath.Join(dir, clearNames[name])
	sealed, err := os.ReadFile(filepath.Join(dir, name))
	switch {
	case err == nil:
		b, err := s.Unseal(name, sealed)
		if errors.Is(err, seal.ErrOtherKey) {
			return nil, fmt.Errorf("%s: %w: this node (its chip, its code, or its seal_key_file) cannot read its secrets; it must rejoin the network by attestation, or the network be recovered", name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := os.Remove(clearPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	b, err := os.ReadFile(clearPath)
	if err != nil {
		return nil, err // fs.ErrNotExist: no secret of that name
	}
	if err := writeSecret(s, dir, name, b); err != nil {
		return nil, err
	}
	if err := os.Remove(clearPath); err != nil {
		return nil, err
	}
	return b, nil
}

// writeSecret seals b for name and writes it atomically.
func writeSecret(s *seal.Sealer, dir, name string, b []byte) error {
	sealed, err := s.Seal(name, b)
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, name), sealed, 0o600)
}

// holdsSecret reports whether dir holds the secret name, sealed or not yet.
func holdsSecret(dir, name string) bool {
	for _, n := range []string{name, clearNames[name]} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}
