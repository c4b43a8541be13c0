package attest

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
)

// snpProvider asks the AMD secure processor for a report through
// go-sev-guest's quote provider (configfs-tsm, else /dev/sev-guest). A node
// calls Evidence once at start; the result is kept per report_data so that
// repeated calls do not go back to the (rate-limited) device.
type snpProvider struct {
	qp client.QuoteProvider

	mu    sync.Mutex
	cache map[[64]byte]*Evidence
}

// NewSNPProvider returns a Provider backed by this machine's SEV-SNP guest
// interface, or an error if neither configfs-tsm nor /dev/sev-guest is usable.
func NewSNPProvider() (Provider, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("attest: sev-snp: %w", err)
	}
	return newSNPProvider(qp), nil
}

// NewSNPProviderFrom is NewSNPProvider over a given go-sev-guest quote
// provider: tests pass go-sev-guest's fake one (its test signer and fake
// device), so the real report path runs.
func NewSNPProviderFrom(qp client.QuoteProvider) Provider { return newSNPProvider(qp) }

func newSNPProvider(qp client.QuoteProvider) *snpProvider {
	return &snpProvider{qp: qp, cache: map[[64]byte]*Evidence{}}
}

func (*snpProvider) Platform() Platform { return PlatformSNP }

func (p *snpProvider) Evidence(ctx context.Context, nodeKey crypto.PublicKey) (*Evidence, error) {
	rd, err := ReportData(nodeKey)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.cache[rd]; ok {
		return e.clone(), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	raw, err := p.qp.GetRawQuote(rd)
	if err != nil {
		return nil, fmt.Errorf("attest: sev-snp report: %w", err)
	}
	if len(raw) < abi.ReportSize {
		return nil, fmt.Errorf("attest: sev-snp report: %d bytes, want at least %d", len(raw), abi.ReportSize)
	}
	e := &Evidence{
		Platform:  PlatformSNP,
		Report:    bytes.Clone(raw[:abi.ReportSize]),
		CertTable: bytes.Clone(raw[abi.ReportSize:]),
	}
	if len(e.CertTable) == 0 {
		e.CertTable = nil
	}
	if err := e.checkShape(); err != nil {
		return nil, fmt.Errorf("attest: sev-snp report from device: %w", err)
	}
	r, err := abi.ReportToProto(e.Report)
	if err != nil {
		return nil, fmt.Errorf("attest: sev-snp report from device: %w", err)
	}
	if !bytes.Equal(r.GetReportData(), rd[:]) {
		return nil, fmt.Errorf("attest: sev-snp device returned a report for other report_data")
	}
	p.cache[rd] = e
	return e.clone(), nil
}

func (e *Evidence) clone() *Evidence {
	return &Evidence{Platform: e.Platform, Report: bytes.Clone(e.Report), CertTable: bytes.Clone(e.CertTable)}
}

// maxCachedCertSize bounds a certificate read from the cache directory.
const maxCachedCertSize = 16 << 10

// cachedCertName is the file name of an endorsement certificate in
// Policy.CertCacheDir: vcek-<CHIP_ID hex>-<REPORTED_TCB %016x>.der or
// vlek-<REPORTED_TCB %016x>.der, DER as AMD's KDS serves it.
func cachedCertName(signer abi.ReportSigner, r *spb.Report) string {
	if signer == abi.VlekReportSigner {
		return fmt.Sprintf("vlek-%016x.der", r.GetReportedTcb())
	}
	return fmt.Sprintf("vcek-%s-%016x.der", hex.EncodeToString(r.GetChipId()), r.GetReportedTcb())
}

func readCachedCert(dir, name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCachedCertSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCachedCertSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxCachedCertSize)
	}
	return b, nil
}

// fillFromCache puts the endorsement certificate from the cache directory
// into the chain when the evidence did not carry one.
func fillFromCache(att *spb.Attestation, signer abi.ReportSigner, dir string) error {
	chain := att.CertificateChain
	switch signer {
	case abi.VcekReportSigner:
		if len(chain.GetVcekCert()) != 0 {
			return nil
		}
	case abi.VlekReportSigner:
		if len(chain.GetVlekCert()) != 0 {
			return nil
		}
	default:
		return nil
	}
	name := cachedCertName(signer, att.Report)
	der, err := readCachedCert(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // verify reports the missing certificate
	}
	if err != nil {
		return fmt.Errorf("%w: certificate cache: %v", ErrSignature, err)
	}
	if signer == abi.VlekReportSigner {
		chain.VlekCert = der
	} else {
		chain.VcekCert = der
	}
	return nil
}

// Guest policies for the validate package. permissive accepts every policy
// bit a report can carry, so a validation pass that is about another field
// fails only for that field; strict is what Charter requires: no debugging,
// no migration agent. SMT and CXL are allowed: they are deployment choices
// that do not expose guest memory to the host.
var (
	permissivePolicy = abi.SnpPolicy{Debug: true, MigrateMA: true, SMT: true, CXLAllowed: true}
	strictPolicy     = abi.SnpPolicy{SMT: true, CXLAllowed: true}
)

func verifySNP(ctx context.Context, e *Evidence, want [64]byte, p *Policy) (*Verified, error) {
	report, err := abi.ReportToProto(e.Report)
	if err != nil {
		return nil, fmt.Errorf("%w: report: %v", ErrMalformed, err)
	}
	if err := abi.ValidateReportFormat(e.Report); err != nil {
		return nil, fmt.Errorf("%w: report: %v", ErrMalformed, err)
	}
	info, err := abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return nil, fmt.Errorf("%w: report signer info: %v", ErrMalformed, err)
	}
	chain := &spb.CertificateChain{Extras: map[string][]byte{}}
	if len(e.CertTable) > 0 {
		t, err := parseCertTable(e.CertTable)
		if err != nil {
			return nil, err
		}
		chain = t.Proto()
	}
	att := &spb.Attestation{Report: report, CertificateChain: chain}
	if p.CertCacheDir != "" {
		if err := fillFromCache(att, info.SigningKey, p.CertCacheDir); err != nil {
			return nil, err
		}
	}

	// 1. Signature: the V[CL]EK chains to the configured (or AMD's embedded)
	// ARK/ASK, and the report is signed by the V[CL]EK.
	vopts := &verify.Options{
		DisableCertFetching: !p.AllowNetwork,
		CheckRevocations:    p.AllowNetwork,
		TrustedRoots:        p.Roots,
	}
	if err := verify.SnpAttestationContext(ctx, att, vopts); err != nil {
		if !p.AllowNetwork && (len(chain.GetVcekCert()) == 0 && info.SigningKey == abi.VcekReportSigner ||
			len(chain.GetVlekCert()) == 0 && info.SigningKey == abi.VlekReportSigner) {
			return nil, fmt.Errorf("%w: no %v certificate in the evidence or the certificate cache, and network fetching is off: %v",
				ErrSignature, info.SigningKey, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}

	// 2. Validation, one concern per pass so that a refusal names its cause,
	// then everything together. Each pass runs the validate package in full.
	run := func(o validate.Options) error { return validate.SnpAttestation(att, &o) }
	base := validate.Options{GuestPolicy: permissivePolicy}

	// The report must agree with its endorsement certificate (TCB, CHIP_ID)
	// and firmware state before any field of it means anything.
	if err := run(base); err != nil {
		return nil, fmt.Errorf("%w: report inconsistent with its endorsement certificate: %v", ErrSignature, err)
	}
	o := base
	o.ReportData = want[:]
	if err := run(o); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReportData, err)
	}
	measurement, err := firstAccepted(p.Measurements, func(m []byte) error {
		o := base
		o.Measurement = m
		return run(o)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %x", ErrMeasurement, report.GetMeasurement())
	}
	var hostData []byte
	if len(p.HostData) > 0 {
		hostData, err = firstAccepted(p.HostData, func(h []byte) error {
			o := base
			o.HostData = h
			return run(o)
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %x", ErrHostData, report.GetHostData())
		}
	}
	o = base
	o.GuestPolicy = strictPolicy
	if err := run(o); err != nil {
		if pol, perr := abi.ParseSnpPolicy(report.GetPolicy()); perr == nil && pol.Debug {
			return nil, fmt.Errorf("%w: %v", ErrDebug, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrGuestPolicy, err)
	}
	vmpl0 := 0
	o = base
	o.VMPL = &vmpl0
	if err := run(o); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVMPL, err)
	}
	minTCB := kds.DecomposeTCBVersion(kds.TCBVersion(p.MinTCB))
	o = base
	o.MinimumTCB = minTCB
	if err := run(o); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTCB, err)
	}
	all := validate.Options{
		GuestPolicy: strictPolicy,
		ReportData:  want[:],
		Measurement: measurement,
		HostData:    hostData,
		VMPL:        &vmpl0,
		MinimumTCB:  minTCB,
	}
	if err := run(all); err != nil {
		// Unreachable if each pass above held; kept so that acceptance is
		// always one validate call with every requirement at once.
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return &Verified{
		Platform:    PlatformSNP,
		Measurement: bytes.Clone(report.GetMeasurement()),
		HostData:    bytes.Clone(report.GetHostData()),
		ReportData:  want,
		ChipID:      bytes.Clone(report.GetChipId()),
		TCB:         report.GetReportedTcb(),
	}, nil
}

// firstAccepted returns the first candidate for which check succeeds.
func firstAccepted(candidates [][]byte, check func([]byte) error) ([]byte, error) {
	err := errors.New("no candidates")
	for _, c := range candidates {
		if err = check(c); err == nil {
			return c, nil
		}
	}
	return nil, err
}
