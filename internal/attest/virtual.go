package attest

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"slices"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// virtualReportVersion is the report version a virtual report declares.
const virtualReportVersion = 2

// virtualPolicy is the guest policy a virtual report declares: the same as
// Charter requires of SEV-SNP guests (no debugging, no migration agent).
var virtualPolicy = abi.SnpPolicyToBytes(abi.SnpPolicy{SMT: true})

type virtualProvider struct {
	measurement []byte
	hostData    []byte
}

// NewVirtualProvider returns a Provider of virtual evidence declaring the
// given 48-byte measurement and 32-byte host data (nil host data means
// zeros). Lengths are checked when Evidence is called.
func NewVirtualProvider(measurement []byte, hostData []byte) Provider {
	return &virtualProvider{measurement: bytes.Clone(measurement), hostData: bytes.Clone(hostData)}
}

func (*virtualProvider) Platform() Platform { return PlatformVirtual }

func (v *virtualProvider) Evidence(_ context.Context, nodeKey crypto.PublicKey) (*Evidence, error) {
	if len(v.measurement) != MeasurementSize {
		return nil, fmt.Errorf("attest: virtual measurement is %d bytes, want %d", len(v.measurement), MeasurementSize)
	}
	hostData := v.hostData
	if hostData == nil {
		hostData = make([]byte, HostDataSize)
	}
	if len(hostData) != HostDataSize {
		return nil, fmt.Errorf("attest: virtual host data is %d bytes, want %d", len(hostData), HostDataSize)
	}
	rd, err := ReportData(nodeKey)
	if err != nil {
		return nil, err
	}
	raw, err := virtualReport(virtualPolicy, 0, rd[:], v.measurement, hostData)
	if err != nil {
		return nil, err
	}
	return &Evidence{Platform: PlatformVirtual, Report: raw}, nil
}

// virtualReport lays out a virtual report with go-sev-guest's own ABI
// encoder: only the declared fields are set, everything else (signature,
// signer, chip id, TCBs, firmware versions) is zero.
func virtualReport(policy uint64, vmpl uint32, reportData, measurement, hostData []byte) ([]byte, error) {
	return abi.ReportToAbiBytes(&spb.Report{
		Version:         virtualReportVersion,
		Policy:          policy,
		Vmpl:            vmpl,
		ReportData:      reportData,
		Measurement:     measurement,
		HostData:        hostData,
		FamilyId:        make([]byte, abi.FamilyIDSize),
		ImageId:         make([]byte, abi.ImageIDSize),
		IdKeyDigest:     make([]byte, abi.IDKeyDigestSize),
		AuthorKeyDigest: make([]byte, abi.AuthorKeyDigestSize),
		ReportId:        make([]byte, abi.ReportIDSize),
		ReportIdMa:      make([]byte, abi.ReportIDMASize),
		ChipId:          make([]byte, abi.ChipIDSize),
		Signature:       make([]byte, abi.SignatureSize),
	})
}

// verifyVirtual checks a virtual report. Nothing in it is signed: what it
// establishes is only that the node declares these values for its key.
func verifyVirtual(e *Evidence, want [64]byte, p *Policy) (*Verified, error) {
	r, err := abi.ReportToProto(e.Report)
	if err != nil {
		return nil, fmt.Errorf("%w: virtual report: %v", ErrMalformed, err)
	}
	// Only the declared fields may be set: re-encode them and compare, so a
	// virtual report cannot smuggle a signature, chip id or TCB.
	canon, err := virtualReport(r.GetPolicy(), r.GetVmpl(), r.GetReportData(), r.GetMeasurement(), r.GetHostData())
	if err != nil || r.GetVersion() != virtualReportVersion || !bytes.Equal(canon, e.Report) {
		return nil, fmt.Errorf("%w: virtual report sets fields other than policy, vmpl, report_data, measurement and host data", ErrMalformed)
	}
	if !bytes.Equal(r.GetReportData(), want[:]) {
		return nil, fmt.Errorf("%w: report_data %x, want %x", ErrReportData, r.GetReportData(), want[:])
	}
	if !slices.ContainsFunc(p.Measurements, func(m []byte) bool { return bytes.Equal(m, r.GetMeasurement()) }) {
		return nil, fmt.Errorf("%w: %x", ErrMeasurement, r.GetMeasurement())
	}
	if len(p.HostData) > 0 && !slices.ContainsFunc(p.HostData, func(h []byte) bool { return bytes.Equal(h, r.GetHostData()) }) {
		return nil, fmt.Errorf("%w: %x", ErrHostData, r.GetHostData())
	}
	pol, err := abi.ParseSnpPolicy(r.GetPolicy())
	if err != nil {
		return nil, fmt.Errorf("%w: virtual report policy: %v", ErrMalformed, err)
	}
	if pol.Debug {
		return nil, ErrDebug
	}
	if pol.MigrateMA {
		return nil, ErrGuestPolicy
	}
	if r.GetVmpl() != 0 {
		return nil, fmt.Errorf("%w: VMPL %d", ErrVMPL, r.GetVmpl())
	}
	return &Verified{
		Platform:    PlatformVirtual,
		Measurement: bytes.Clone(r.GetMeasurement()),
		HostData:    bytes.Clone(r.GetHostData()),
		ReportData:  want,
	}, nil
}
