package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/seal"
)

// FileLaterLedgerSecrets holds, sealed, the ledger secret versions after
// the first (trigger_ledger_rekey, spec/recovery.md): a JSON object from
// the version in decimal to the secret (base64). The first version stays
// in FileLedgerSecret, so a node that never saw a rekey has no such file.
const FileLaterLedgerSecrets = "ledger_secrets_later.sealed"

// MaxLedgerSecretVersions bounds the versions a node keeps, and so what it
// reads back from its file.
const MaxLedgerSecretVersions = 1 << 16

// StoreLaterLedgerSecrets replaces the sealed file of later ledger
// secrets with secrets (version ≥ 1 → secret).
func StoreLaterLedgerSecrets(dir string, s *seal.Sealer, secrets map[uint64][]byte) error {
	m := make(map[string][]byte, len(secrets))
	for v, b := range secrets {
		if v == 0 || len(b) != LedgerSecretSize {
			return fmt.Errorf("ledger secret version %d of %d bytes", v, len(b))
		}
		m[strconv.FormatUint(v, 10)] = b
	}
	plain, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sealed, err := s.Seal(FileLaterLedgerSecrets, plain)
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, FileLaterLedgerSecrets), sealed, 0o600)
}

// LoadLaterLedgerSecrets reads what StoreLaterLedgerSecrets wrote; none
// when there is no file.
func LoadLaterLedgerSecrets(dir string, s *seal.Sealer) (map[uint64][]byte, error) {
	sealed, err := os.ReadFile(filepath.Join(dir, FileLaterLedgerSecrets))
	if errors.Is(err, fs.ErrNotExist) {
		return map[uint64][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	plain, err := s.Unseal(FileLaterLedgerSecrets, sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileLaterLedgerSecrets, err)
	}
	var m map[string][]byte
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", FileLaterLedgerSecrets, err)
	}
	if len(m) > MaxLedgerSecretVersions {
		return nil, fmt.Errorf("%s: %d versions, at most %d", FileLaterLedgerSecrets, len(m), MaxLedgerSecretVersions)
	}
	out := make(map[uint64][]byte, len(m))
	for k, b := range m {
		v, err := strconv.ParseUint(k, 10, 64)
		if err != nil || v == 0 || len(b) != LedgerSecretSize {
			return nil, fmt.Errorf("%s: entry %q is not a ledger secret version", FileLaterLedgerSecrets, k)
		}
		out[v] = b
	}
	return out, nil
}
