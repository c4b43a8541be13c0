// Package snptest makes SEV-SNP evidence for tests of code that verifies
// it, with go-sev-guest's own test tooling: its test-only AMD certificate
// chain (testing.AmdSigner) and fake quote provider, which signs a report
// with the test VCEK and returns it with the certificate table as
// configfs-tsm would. The real verification and validation paths run on
// it. Only tests import this package: it produces no hardware claim.
package snptest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/google/go-sev-guest/abi"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	sgtest "github.com/google/go-sev-guest/testing"
)

// ProductLine is the product line of the test chains.
const ProductLine = "Milan"

const productName = "Milan-B1"

// Report is what a test report declares.
type Report struct {
	Policy      abi.SnpPolicy
	VMPL        uint32
	Measurement []byte // 48 bytes
	HostData    []byte // 32 bytes; nil: zeros
}

// NewSigner returns a test-only AMD chain with fresh ARK and ASK keys, so
// chains from two calls do not verify each other's reports.
func NewSigner() (*sgtest.AmdSigner, error) {
	ark, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ask, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	b := &sgtest.AmdSignerBuilder{
		Keys: &sgtest.AmdKeys{Ark: ark, Ask: ask, Asvk: sgtest.DefaultAsvk(),
			Vcek: sgtest.DefaultVcek(), Vlek: sgtest.DefaultVlek()},
		ProductName:     productName,
		CSPID:           "go-sev-guest",
		ArkCreationTime: now, AskCreationTime: now, AsvkCreationTime: now,
		VcekCreationTime: now, VlekCreationTime: now,
	}
	return b.TestOnlyCertChain()
}

// KDSChain is s's ASK and ARK in AMD KDS's cert_chain format, for a node's
// Attestation.AMDRootsFile.
func KDSChain(s *sgtest.AmdSigner) []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Ask.Raw})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Ark.Raw})...)
}

// Evidence is the evidence a node with key would present on a machine
// whose chain is s, declaring r: attest's SNP provider asks go-sev-guest's
// fake quote provider for it.
func Evidence(ctx context.Context, s *sgtest.AmdSigner, key crypto.PublicKey, r Report) (*attest.Evidence, error) {
	rd, err := attest.ReportData(key)
	if err != nil {
		return nil, err
	}
	product := abi.DefaultSevProduct()
	raw := sgtest.CreateRawReport(&sgtest.TestReportOptions{
		ReportData: rd[:],
		Version:    3,
		FMS:        abi.MaskedCpuid1EaxFromSevProduct(product),
	})
	rep, err := abi.ReportToProto(raw[:])
	if err != nil {
		return nil, err
	}
	rep.Policy = abi.SnpPolicyToBytes(r.Policy)
	rep.Vmpl = r.VMPL
	rep.Measurement = r.Measurement
	rep.HostData = r.HostData
	if rep.HostData == nil {
		rep.HostData = make([]byte, attest.HostDataSize)
	}
	rep.SignatureAlgo = abi.SignEcdsaP384Sha384
	b, err := abi.ReportToAbiBytes(rep)
	if err != nil {
		return nil, err
	}
	var out [labi.SnpReportRespReportSize]byte
	copy(out[:], b)
	qp, err := sgtest.TcQuoteProvider([]sgtest.TestCase{{Name: "snptest", Input: rd, Output: out}},
		&sgtest.DeviceOptions{Now: time.Now(), Signer: s, Product: product})
	if err != nil {
		return nil, err
	}
	return attest.NewSNPProviderFrom(qp).Evidence(ctx, key)
}
