package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"fmt"
	"io"
	"os"
	"time"
)

// NodeEvidence produces a node's attestation evidence for its node key,
// once, at start. On the virtual platform the declared measurement is
// SHA-384 of the running charterd binary: it names the code without any
// hardware claim, so a consortium can still compare it with the build it
// approved.
func NodeEvidence(ctx context.Context, platform string, nodeKey *ecdsa.PrivateKey) (*Evidence, error) {
	var p Provider
	switch platform {
	case "", string(PlatformVirtual):
		m, err := executableDigest()
		if err != nil {
			return nil, err
		}
		p = NewVirtualProvider(m, nil)
	case string(PlatformSNP):
		var err error
		if p, err = NewSNPProvider(); err != nil {
			return nil, fmt.Errorf("SEV-SNP evidence: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown platform %q (want virtual or sev-snp)", platform)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.Evidence(ctx, &nodeKey.PublicKey)
}

func executableDigest() ([]byte, error) {
	path, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
