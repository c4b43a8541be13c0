package attest

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/google/go-sev-guest/verify/trust"
)

// Platform names the kind of evidence a node presents.
type Platform string

const (
	// PlatformSNP is AMD SEV-SNP: a hardware-signed attestation report.
	PlatformSNP Platform = "sev-snp"
	// PlatformVirtual is a self-declared report with the same fields and no
	// hardware claims, for development and CI networks.
	PlatformVirtual Platform = "virtual"
)

// Refusals. Every error Verify returns wraps exactly one of these, so callers
// can tell an operator which check failed with errors.Is.
var (
	ErrMalformed         = errors.New("attest: malformed evidence")
	ErrSignature         = errors.New("attest: report signature or certificate chain not valid")
	ErrReportData        = errors.New("attest: report_data does not bind the node key")
	ErrMeasurement       = errors.New("attest: measurement not approved by governance")
	ErrHostData          = errors.New("attest: host data not approved by governance")
	ErrDebug             = errors.New("attest: guest policy allows debugging")
	ErrGuestPolicy       = errors.New("attest: guest policy allows a migration agent")
	ErrVMPL              = errors.New("attest: report not taken at VMPL 0")
	ErrTCB               = errors.New("attest: reported TCB below the governance minimum")
	ErrVirtualNotAllowed = errors.New("attest: virtual platform not allowed by governance")
	ErrPlatform          = errors.New("attest: unknown platform")
	ErrConfig            = errors.New("attest: invalid verification policy")
)

// Sizes of the report fields governance approves, from the SEV-SNP ABI.
const (
	MeasurementSize = 48
	HostDataSize    = 32
)

// Provider produces this node's evidence for its public key.
type Provider interface {
	Platform() Platform
	Evidence(ctx context.Context, nodeKey crypto.PublicKey) (*Evidence, error)
}

// ReportData is the report_data binding for a node key: SHA-256 of the key's
// DER SubjectPublicKeyInfo in the first 32 bytes, zeros in the last 32.
func ReportData(nodeKey crypto.PublicKey) ([64]byte, error) {
	var rd [64]byte
	if nodeKey == nil {
		return rd, fmt.Errorf("attest: no node key")
	}
	spki, err := x509.MarshalPKIXPublicKey(nodeKey)
	if err != nil {
		return rd, fmt.Errorf("attest: node key: %w", err)
	}
	sum := sha256.Sum256(spki)
	copy(rd[:], sum[:])
	return rd, nil
}

// Policy is what governance approves: the maps
// public:ccf.gov.nodes.snp.measurements and public:ccf.gov.nodes.snp.host_data,
// a flag for the virtual platform, and the operator's verification settings.
type Policy struct {
	// Measurements are the 48-byte launch measurements accepted. Empty accepts none.
	Measurements [][]byte
	// HostData are the 32-byte host data values accepted; empty accepts any.
	HostData [][]byte
	// AllowVirtual admits virtual evidence.
	AllowVirtual bool
	// MinTCB is the minimum reported TCB, as go-sev-guest's kds.TCBVersion
	// uint64 (compared component by component); 0 means no minimum. It does
	// not apply to virtual evidence, which claims no TCB.
	MinTCB uint64
	// Roots, if set, replace AMD's embedded ARK/ASK roots. It has exactly the
	// type of go-sev-guest's verify.Options.TrustedRoots: product line
	// ("Milan", "Genoa", "Turin") to the roots accepted for it. Production
	// leaves it nil; tests pass the test signer's roots.
	Roots map[string][]*trust.AMDRootCerts
	// CertCacheDir optionally holds VCEK/VLEK certificates for reports whose
	// certificate table lacks them (see doc.go for the file names).
	CertCacheDir string
	// AllowNetwork lets verification fetch missing certificates from AMD's
	// KDS and check AMD's revocation lists. Off by default.
	AllowNetwork bool
}

// Verified is what a verified evidence established.
type Verified struct {
	Platform    Platform
	Measurement []byte
	HostData    []byte
	ReportData  [64]byte
	ChipID      []byte // SNP only; all zeros if the host masks it
	TCB         uint64 // SNP reported TCB; 0 for virtual
}

func (p *Policy) check() error {
	for i, m := range p.Measurements {
		if len(m) != MeasurementSize {
			return fmt.Errorf("%w: measurement %d is %d bytes, want %d", ErrConfig, i, len(m), MeasurementSize)
		}
	}
	for i, h := range p.HostData {
		if len(h) != HostDataSize {
			return fmt.Errorf("%w: host data %d is %d bytes, want %d", ErrConfig, i, len(h), HostDataSize)
		}
	}
	return nil
}

// Verify checks evidence for nodeKey against policy. See doc.go for the order
// of checks. It does no I/O except reading Policy.CertCacheDir and, only when
// Policy.AllowNetwork is set, contacting AMD's KDS.
func Verify(ctx context.Context, e *Evidence, nodeKey crypto.PublicKey, p Policy) (*Verified, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no evidence", ErrMalformed)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	want, err := ReportData(nodeKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReportData, err)
	}
	switch e.Platform {
	case PlatformSNP:
		if err := e.checkShape(); err != nil {
			return nil, err
		}
		return verifySNP(ctx, e, want, &p)
	case PlatformVirtual:
		if !p.AllowVirtual {
			return nil, ErrVirtualNotAllowed
		}
		if err := e.checkShape(); err != nil {
			return nil, err
		}
		return verifyVirtual(e, want, &p)
	default:
		return nil, fmt.Errorf("%w: %q", ErrPlatform, e.Platform)
	}
}
