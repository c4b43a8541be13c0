package node

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/seal"
	"github.com/google/go-sev-guest/client"
)

// openSealer returns the key this node seals its secrets under: on
// sev-snp, one the firmware derives for this chip, code and policy; on
// virtual, the operator's key file outside the data directory, created on
// first use unless the data directory already holds sealed secrets (a
// missing key must be said, not replaced: the secrets would be lost).
func openSealer(cfg config.Config) (*seal.Sealer, error) {
	if cfg.Platform == "sev-snp" {
		dev, err := client.OpenDevice()
		if err != nil {
			return nil, fmt.Errorf("sealing: opening the SEV-SNP guest device: %w", err)
		}
		defer dev.Close()
		// A key may be derived for the guest's own VMPL or a less
		// privileged one; the lowest the firmware grants is the same on
		// every boot of this guest.
		var errs []error
		for vmpl := uint32(0); vmpl <= 3; vmpl++ {
			s, err := seal.SNPKey(dev, vmpl)
			if err == nil {
				return s, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	s, err := seal.FileKey(cfg.SealKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		if identity.HoldsSealed(cfg.DataDir) {
			return nil, fmt.Errorf("sealing: %s holds sealed secrets, but their key %s is missing: restore it, or rejoin this node by attestation", cfg.DataDir, cfg.SealKeyFile)
		}
		if err := seal.GenerateKeyFile(cfg.SealKeyFile); err != nil {
			return nil, fmt.Errorf("sealing: creating %s: %w", cfg.SealKeyFile, err)
		}
		s, err = seal.FileKey(cfg.SealKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	return s, nil
}
