// Package attest binds a node's identity key to evidence of the code it runs.
//
// # Evidence
//
// A node presents an Evidence: a platform name, a report in the SEV-SNP
// ATTESTATION_REPORT byte layout (1184 bytes) and, for sev-snp, optionally
// the extended report's certificate table. MarshalEvidence writes it as a
// canonical CBOR map {1: platform, 2: report, ? 3: certificate table};
// UnmarshalEvidence accepts only that encoding, with bounded sizes.
//
// In every report, REPORT_DATA is SHA-256 of the node key's DER
// SubjectPublicKeyInfo followed by 32 zero bytes (ReportData).
//
// # What Verify checks, in order
//
// For sev-snp (all through go-sev-guest):
//
//  1. Shape: known platform, report size, a well-formed certificate table.
//     (ErrMalformed, ErrPlatform)
//  2. Signature (verify package): the VCEK or VLEK, taken from the
//     certificate table or else from Policy.CertCacheDir, chains to the
//     trusted ARK/ASK — Policy.Roots if set, otherwise the AMD roots embedded
//     in go-sev-guest — and signs the report. The ARK/ASK the evidence
//     carries are never trusted. Nothing is fetched unless
//     Policy.AllowNetwork is set; then missing certificates come from AMD's
//     KDS and AMD's revocation lists are checked. (ErrSignature)
//  3. Validation (validate package), one requirement per pass so that a
//     refusal names its cause, then all of them in one final pass:
//     the report agrees with its endorsement certificate (TCB, CHIP_ID) and
//     firmware state (ErrSignature); REPORT_DATA binds the node key
//     (ErrReportData); MEASUREMENT is one of Policy.Measurements
//     (ErrMeasurement); HOST_DATA is one of Policy.HostData when that list is
//     non-empty (ErrHostData); the guest policy does not allow debugging
//     (ErrDebug) or a migration agent (ErrGuestPolicy) — SMT and CXL are
//     allowed; the report was taken at VMPL 0 (ErrVMPL); the reported TCB is
//     at least Policy.MinTCB component by component (ErrTCB).
//
// # The virtual platform
//
// Virtual evidence is for development and CI. Its report has the SEV-SNP
// layout but only version (2), guest policy, VMPL, REPORT_DATA, MEASUREMENT
// and HOST_DATA may be set; the signature, signer, CHIP_ID, TCB and firmware
// fields must be zero. It is accepted only when Policy.AllowVirtual is set
// (ErrVirtualNotAllowed), and then REPORT_DATA must still bind the node key
// and the measurement, host data, guest policy and VMPL are checked as for
// sev-snp. MinTCB does not apply. Nothing in it is signed: it claims no
// hardware, no isolation from the host and no confidentiality — only that
// the node declares these values for its key. Its measurement is whatever
// the node was configured to declare; governance approves it like any other.
//
// # What an operator supplies on hardware
//
// The guest needs configfs-tsm (/sys/kernel/config/tsm/report) or
// /dev/sev-guest; NewSNPProvider fails otherwise. The node asks for its
// report once, at start (NodeEvidence, which on virtual declares the
// running binary's SHA-384).
//
// Endorsement certificate: hosts usually hand the VCEK (or the cloud's VLEK)
// to the guest in the extended report's certificate table, and nothing more
// is needed. Where the host does not, put the certificate, DER as AMD's KDS
// serves it, in the certificate cache directory (Policy.CertCacheDir) under
//
//	vcek-<CHIP_ID, lower-case hex>-<REPORTED_TCB, %016x>.der
//	vlek-<REPORTED_TCB, %016x>.der
//
// or allow the network (Policy.AllowNetwork) so it is fetched from AMD.
// Either way the certificate is only trusted if it chains to AMD's roots.
//
// Measurement to propose: the SEV-SNP launch measurement (48 bytes) of the
// exact guest image — firmware (OVMF), kernel, initrd, command line, vCPU
// count and type and guest features — that runs charterd. It can be computed
// ahead of launch from those inputs with a tool such as the
// virtee project's sev-snp-measure (github.com/virtee/sev-snp-measure; see its documentation
// for the options matching your VMM), or read from the MEASUREMENT field of
// a report taken on a trusted first launch. Propose it (hex) into
// public:ccf.gov.nodes.snp.measurements, and the HOST_DATA the host sets at
// launch, if any, into public:ccf.gov.nodes.snp.host_data.
//
// # go-sev-guest side effects
//
// Importing this package links go-sev-guest's client and verify packages,
// which register command-line flags on the global flag set
// (sev_guest_device_path, self_throttle_duration, self_throttle_burst,
// default_vmpl, workaround_kds_productname). Binaries that parse the global
// flag set will show them.
package attest
