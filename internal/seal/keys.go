package seal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/charterlog/charter/internal/durable"
	"github.com/google/go-sev-guest/client"
)

// keyFileLen is a key file's length: 64 hex digits and a newline.
const keyFileLen = 65

// GenerateKeyFile writes a new random virtual sealing key to path (0600),
// refusing to replace an existing file: replacing it would make what it
// sealed unreadable.
func GenerateKeyFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("seal: %s exists; a sealing key is never replaced", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return durable.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600)
}

// FileKey reads a virtual sealing key written by GenerateKeyFile. The file
// must be readable by its owner only.
func FileKey(path string) (*Sealer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seal: sealing key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal: sealing key %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: sealing key: %w", err)
	}
	if len(b) > keyFileLen+1 {
		return nil, fmt.Errorf("seal: sealing key %s is not 64 hex digits", path)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("seal: sealing key %s is not 64 hex digits", path)
	}
	return New(KindVirtual, key)
}

// snpKeyRequest asks the secure processor for a key rooted in the chip's
// VCEK and mixed with the launch measurement and the guest policy: the
// same code under the same policy on the same chip derives the same key.
// The TCB version is not mixed in: a firmware update must not lock a node
// out of its own data (attestation, not sealing, judges the TCB).
func snpKeyRequest(vmpl uint32) *client.SnpDerivedKeyReq {
	return &client.SnpDerivedKeyReq{
		UseVCEK:          true,
		GuestFieldSelect: client.GuestFieldSelect{Measurement: true, GuestPolicy: true},
		Vmpl:             vmpl,
	}
}

// SNPKey derives the sealing key from the SEV-SNP guest device dev (open),
// at vmpl: the privilege level the guest runs at (its attestation report
// says), since a key may be derived only for that level or a less
// privileged one.
func SNPKey(dev client.Device, vmpl uint32) (*Sealer, error) {
	resp, err := client.GetDerivedKeyAcknowledgingItsLimitations(dev, snpKeyRequest(vmpl))
	if err != nil {
		return nil, fmt.Errorf("seal: deriving the sealing key from the SEV-SNP firmware: %w", err)
	}
	if resp.Status != 0 {
		return nil, fmt.Errorf("seal: the SEV-SNP firmware refused to derive a key (status %#x)", resp.Status)
	}
	return New(KindSNP, resp.Data[:])
}
