package attest

import (
	"bytes"
	"fmt"

	"github.com/charterlog/charter/cbor"
	"github.com/google/go-sev-guest/abi"
)

// Evidence is what a node presents.
//
// Report is always an SEV-SNP ATTESTATION_REPORT in its ABI byte layout
// (exactly abi.ReportSize = 1184 bytes), so both platforms share one parser.
// For sev-snp it is the report as the AMD secure processor signed it. For
// virtual it is a self-declared report carrying only version, policy, VMPL,
// report_data, measurement and host data; every other field, including the
// signature, is zero (see virtual.go).
//
// CertTable is, for sev-snp, the certificate table of the extended report
// (the GHCB "certificate blob": GUID/offset/length entries followed by the
// DER certificates), as configfs-tsm's auxblob or the extended-report ioctl
// return it. It is optional: the VCEK/VLEK may instead come from the
// operator's cache directory. Virtual evidence has no certificate table.
//
// Wire form (MarshalEvidence): a CBOR map in Core Deterministic Encoding,
//
//	{ 1: tstr platform, 2: bstr report, ? 3: bstr certificate table }
//
// UnmarshalEvidence accepts only that exact canonical encoding.
type Evidence struct {
	Platform  Platform
	Report    []byte
	CertTable []byte
}

// Bounds on what UnmarshalEvidence accepts. A real certificate table holds
// the ARK, ASK, VCEK or VLEK and perhaps a few extras, well under 16 KiB.
const (
	MaxCertTableSize = 64 << 10
	maxEvidenceSize  = MaxCertTableSize + abi.ReportSize + 64
	maxCertEntries   = 32
)

type evidenceWire struct {
	Platform  string `cbor:"1,keyasint"`
	Report    []byte `cbor:"2,keyasint"`
	CertTable []byte `cbor:"3,keyasint,omitempty"`
}

// decMode is the CBOR policy (package cbor) tightened to evidence's one
// small map: three keys, no nesting to speak of, no tags, and no key the
// wire form does not name, so that only MarshalEvidence's exact output is
// accepted.
var decMode = cbor.NewDecMode(cbor.Options{
	MaxNestedLevels:     4,
	MaxArrayElements:    16,
	MaxMapPairs:         16,
	RefuseUnknownFields: true,
	RefuseTags:          true,
})

// MarshalEvidence encodes e in its canonical CBOR form, after the same shape
// checks UnmarshalEvidence applies.
func MarshalEvidence(e *Evidence) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no evidence", ErrMalformed)
	}
	if err := e.checkShape(); err != nil {
		return nil, err
	}
	return cbor.Marshal(evidenceWire{Platform: string(e.Platform), Report: e.Report, CertTable: e.CertTable})
}

// UnmarshalEvidence decodes evidence from untrusted bytes. It is strict: the
// encoding must be exactly what MarshalEvidence produces (canonical, no
// unknown keys, no tags), the platform must be known, the report exactly
// abi.ReportSize bytes and the certificate table well-formed and bounded.
// It does not verify anything; see Verify.
func UnmarshalEvidence(b []byte) (*Evidence, error) {
	if len(b) > maxEvidenceSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), maxEvidenceSize)
	}
	var w evidenceWire
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	e := &Evidence{Platform: Platform(w.Platform), Report: w.Report, CertTable: w.CertTable}
	if err := e.checkShape(); err != nil {
		return nil, err
	}
	again, err := cbor.Marshal(w)
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not in canonical encoding", ErrMalformed)
	}
	return e, nil
}

// checkShape checks sizes and structure, not content.
func (e *Evidence) checkShape() error {
	switch e.Platform {
	case PlatformSNP, PlatformVirtual:
	default:
		return fmt.Errorf("%w: %q", ErrPlatform, e.Platform)
	}
	if len(e.Report) != abi.ReportSize {
		return fmt.Errorf("%w: report is %d bytes, want %d", ErrMalformed, len(e.Report), abi.ReportSize)
	}
	if e.Platform == PlatformVirtual && len(e.CertTable) != 0 {
		return fmt.Errorf("%w: virtual evidence carries a certificate table", ErrMalformed)
	}
	if len(e.CertTable) > MaxCertTableSize {
		return fmt.Errorf("%w: certificate table is %d bytes, limit %d", ErrMalformed, len(e.CertTable), MaxCertTableSize)
	}
	if len(e.CertTable) > 0 {
		if _, err := parseCertTable(e.CertTable); err != nil {
			return err
		}
	}
	return nil
}

// parseCertTable parses a GHCB certificate table. It checks every entry's
// range with 64-bit arithmetic first: abi.CertTable.Unmarshal adds offset and
// length in uint32 and would slice out of range (panic) on a wrapped sum.
func parseCertTable(b []byte) (*abi.CertTable, error) {
	hdr, err := abi.ParseSnpCertTableHeader(b)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate table: %v", ErrMalformed, err)
	}
	if len(hdr) > maxCertEntries {
		return nil, fmt.Errorf("%w: certificate table has %d entries, limit %d", ErrMalformed, len(hdr), maxCertEntries)
	}
	for i, h := range hdr {
		if uint64(h.Offset)+uint64(h.Length) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: certificate table entry %d (offset %d, length %d) outside %d bytes",
				ErrMalformed, i, h.Offset, h.Length, len(b))
		}
	}
	t := new(abi.CertTable)
	if err := t.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w: certificate table: %v", ErrMalformed, err)
	}
	return t, nil
}

// Measurement is the launch measurement the report declares, unverified:
// for a node to name its own code, never to decide trust (Verify does that).
func (e *Evidence) Measurement() ([]byte, error) {
	if err := e.checkShape(); err != nil {
		return nil, err
	}
	r, err := abi.ReportToProto(e.Report)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return r.GetMeasurement(), nil
}
