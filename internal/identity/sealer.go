package identity

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/charterlog/charter/internal/seal"
	"github.com/google/go-sev-guest/client"
)

// OpenSealer returns the key a node seals its secrets under (in dataDir,
// on platform): on
// sev-snp, one the firmware derives for this chip, code and policy; on
// virtual, the operator's key file outside the data directory, created on
// first use unless the data directory already holds sealed secrets (a
// missing key must be said, not replaced: the secrets would be lost).
func OpenSealer(platform, dataDir, keyFile string) (*seal.Sealer, error) {
	if platform == "sev-snp" {
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
	s, err := seal.FileKey(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		if HoldsSealed(dataDir) {
			return nil, fmt.Errorf("sealing: %s holds sealed secrets, but their key %s is missing: restore it, or rejoin this node by attestation", dataDir, keyFile)
		}
		if err := seal.GenerateKeyFile(keyFile); err != nil {
			return nil, fmt.Errorf("sealing: creating %s: %w", keyFile, err)
		}
		s, err = seal.FileKey(keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	return s, nil
}
