package identity

import (
	"fmt"

	"github.com/charterlog/charter/internal/seal"
)

// StoreLedgerSecret replaces the ledger secret in dir, sealed, with one
// recovered from the members' shares after a recovery: the recovered
// service's private maps are encrypted under it.
func StoreLedgerSecret(dir string, s *seal.Sealer, secret []byte) error {
	if len(secret) != LedgerSecretSize {
		return fmt.Errorf("a ledger secret is %d bytes, not %d", LedgerSecretSize, len(secret))
	}
	return writeSecret(s, dir, FileLedgerSecret, secret)
}
