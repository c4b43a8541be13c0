package attest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	sgtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify/trust"
)

// The SNP tests build every report with go-sev-guest's own test tooling: the
// test-only AMD certificate chain (sgtest.AmdSigner) and the fake quote
// provider (sgtest.TcQuoteProvider), which signs the report with the test
// VCEK and returns it with the extended certificate table, exactly as
// configfs-tsm would. Only the unsigned report body is chosen here, through
// sgtest.CreateRawReport and go-sev-guest's ABI encoder.

const productName = "Milan-B1"

var (
	signerOnce sync.Once
	testSigner *sgtest.AmdSigner
	signerErr  error
)

// defaultSigner is go-sev-guest's DefaultTestOnlyCertChain, built once.
func defaultSigner(t testing.TB) *sgtest.AmdSigner {
	t.Helper()
	signerOnce.Do(func() {
		testSigner, signerErr = sgtest.DefaultTestOnlyCertChain(productName, time.Now().Add(-time.Hour))
	})
	if signerErr != nil {
		t.Fatalf("DefaultTestOnlyCertChain: %v", signerErr)
	}
	return testSigner
}

// rootsOf returns the signer's ARK/ASK/ASVK in verify.Options.TrustedRoots form.
func rootsOf(s *sgtest.AmdSigner) map[string][]*trust.AMDRootCerts {
	return map[string][]*trust.AMDRootCerts{"Milan": {{
		ProductLine:  "Milan",
		ProductCerts: &trust.ProductCerts{Ark: s.Ark, Ask: s.Ask, Asvk: s.Asvk},
	}}}
}

// otherSigner is a test chain with its own ARK and ASK keys (the VCEK key is
// go-sev-guest's default), so it shares nothing that verifies the default
// signer's VCEK.
func otherSigner(t *testing.T) *sgtest.AmdSigner {
	t.Helper()
	ark, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ask, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
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
	s, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatalf("TestOnlyCertChain: %v", err)
	}
	return s
}

func nodeKey(t testing.TB) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

var (
	goodMeasurement = bytes.Repeat([]byte{0xa1}, MeasurementSize)
	otherMeasure    = bytes.Repeat([]byte{0xb2}, MeasurementSize)
	goodHostData    = bytes.Repeat([]byte{0xc3}, HostDataSize)
)

// reportBody says what the (unsigned) report declares.
type reportBody struct {
	policy      abi.SnpPolicy
	vmpl        uint32
	measurement []byte
	hostData    []byte
}

func goodBody() reportBody {
	return reportBody{policy: abi.SnpPolicy{SMT: true}, measurement: goodMeasurement, hostData: goodHostData}
}

// snpEvidence asks the fake quote provider, through this package's SNP
// provider, for the evidence of key with the given report body.
func snpEvidence(t *testing.T, signer *sgtest.AmdSigner, key *ecdsa.PublicKey, body reportBody) *Evidence {
	t.Helper()
	e, err := fakeSNPProvider(t, signer, key, body).Evidence(context.Background(), key)
	if err != nil {
		t.Fatalf("Evidence: %v", err)
	}
	return e
}

// fakeSNPProvider is this package's SNP provider over go-sev-guest's fake
// quote provider, which answers key's report_data with body, signed.
func fakeSNPProvider(t *testing.T, signer *sgtest.AmdSigner, key *ecdsa.PublicKey, body reportBody) *snpProvider {
	t.Helper()
	rd, err := ReportData(key)
	if err != nil {
		t.Fatal(err)
	}
	product := abi.DefaultSevProduct()
	raw := sgtest.CreateRawReport(&sgtest.TestReportOptions{
		ReportData: rd[:],
		Version:    3,
		FMS:        abi.MaskedCpuid1EaxFromSevProduct(product),
	})
	r, err := abi.ReportToProto(raw[:])
	if err != nil {
		t.Fatal(err)
	}
	r.Policy = abi.SnpPolicyToBytes(body.policy)
	r.Vmpl = body.vmpl
	r.Measurement = body.measurement
	r.HostData = body.hostData
	r.SignatureAlgo = abi.SignEcdsaP384Sha384
	b, err := abi.ReportToAbiBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	var out [labi.SnpReportRespReportSize]byte
	copy(out[:], b)
	qp, err := sgtest.TcQuoteProvider([]sgtest.TestCase{{Name: t.Name(), Input: rd, Output: out}},
		&sgtest.DeviceOptions{Now: time.Now(), Signer: signer, Product: product})
	if err != nil {
		t.Fatal(err)
	}
	return newSNPProvider(qp)
}

func testPolicy(s *sgtest.AmdSigner) Policy {
	return Policy{Measurements: [][]byte{otherMeasure, goodMeasurement}, Roots: rootsOf(s)}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("Verify error = %v, want %v", err, want)
	}
	t.Logf("refused as expected: %v", err)
}

func TestSNPAccepted(t *testing.T) {
	s := defaultSigner(t)
	key := nodeKey(t)
	e := snpEvidence(t, s, key, goodBody())
	p := testPolicy(s)
	p.HostData = [][]byte{goodHostData}
	v, err := Verify(context.Background(), e, key, p)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	rd, _ := ReportData(key)
	if v.Platform != PlatformSNP || !bytes.Equal(v.Measurement, goodMeasurement) ||
		!bytes.Equal(v.HostData, goodHostData) || v.ReportData != rd || len(v.ChipID) != abi.ChipIDSize {
		t.Fatalf("Verified = %+v", v)
	}
	// The wire form carries everything Verify needs.
	b, err := MarshalEvidence(e)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := UnmarshalEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), e2, key, p); err != nil {
		t.Fatalf("Verify after round trip: %v", err)
	}
}

func TestSNPRefusals(t *testing.T) {
	s := defaultSigner(t)
	key := nodeKey(t)
	ctx := context.Background()
	good := snpEvidence(t, s, key, goodBody())

	t.Run("wrong measurement", func(t *testing.T) {
		p := testPolicy(s)
		p.Measurements = [][]byte{otherMeasure}
		_, err := Verify(ctx, good, key, p)
		wantErr(t, err, ErrMeasurement)
	})
	t.Run("no approved measurements", func(t *testing.T) {
		p := testPolicy(s)
		p.Measurements = nil
		_, err := Verify(ctx, good, key, p)
		wantErr(t, err, ErrMeasurement)
	})
	t.Run("tampered report bytes", func(t *testing.T) {
		e := good.clone()
		e.Report[0x90] ^= 0x01 // first byte of MEASUREMENT, inside the signed part
		p := testPolicy(s)
		p.Measurements = append(p.Measurements, e.Report[0x90:0xC0]) // even if approved
		_, err := Verify(ctx, e, key, p)
		wantErr(t, err, ErrSignature)
	})
	t.Run("tampered signature", func(t *testing.T) {
		e := good.clone()
		e.Report[0x2A0] ^= 0x01 // first byte of the signature's R
		_, err := Verify(ctx, e, key, testPolicy(s))
		wantErr(t, err, ErrSignature)
	})
	t.Run("report_data for another key", func(t *testing.T) {
		_, err := Verify(ctx, good, nodeKey(t), testPolicy(s))
		wantErr(t, err, ErrReportData)
	})
	t.Run("debug policy", func(t *testing.T) {
		b := goodBody()
		b.policy.Debug = true
		e := snpEvidence(t, s, key, b)
		_, err := Verify(ctx, e, key, testPolicy(s))
		wantErr(t, err, ErrDebug)
	})
	t.Run("migration agent", func(t *testing.T) {
		b := goodBody()
		b.policy.MigrateMA = true
		e := snpEvidence(t, s, key, b)
		_, err := Verify(ctx, e, key, testPolicy(s))
		wantErr(t, err, ErrGuestPolicy)
	})
	t.Run("VMPL 1", func(t *testing.T) {
		b := goodBody()
		b.vmpl = 1
		e := snpEvidence(t, s, key, b)
		_, err := Verify(ctx, e, key, testPolicy(s))
		wantErr(t, err, ErrVMPL)
	})
	t.Run("host data not approved", func(t *testing.T) {
		p := testPolicy(s)
		p.HostData = [][]byte{make([]byte, HostDataSize)}
		_, err := Verify(ctx, good, key, p)
		wantErr(t, err, ErrHostData)
	})
	t.Run("TCB below minimum", func(t *testing.T) {
		// The test VCEK certifies TCB 0 and the report must match it, so
		// any minimum above 0 refuses.
		p := testPolicy(s)
		p.MinTCB = 1 << 48 // SNP SPL 1
		_, err := Verify(ctx, good, key, p)
		wantErr(t, err, ErrTCB)
	})
	t.Run("chain not rooted in the configured root", func(t *testing.T) {
		p := testPolicy(s)
		p.Roots = rootsOf(otherSigner(t))
		_, err := Verify(ctx, good, key, p)
		wantErr(t, err, ErrSignature)
	})
	t.Run("AMD's embedded roots refuse the test chain", func(t *testing.T) {
		p := testPolicy(s)
		p.Roots = nil
		_, err := Verify(ctx, good, key, p)
		wantErr(t, err, ErrSignature)
	})
	t.Run("signed by another chain, configured root", func(t *testing.T) {
		o := otherSigner(t)
		e := snpEvidence(t, o, key, goodBody())
		if _, err := Verify(ctx, e, key, testPolicy(o)); err != nil {
			t.Fatalf("the other chain verifies against its own root: %v", err)
		}
		_, err := Verify(ctx, e, key, testPolicy(s))
		wantErr(t, err, ErrSignature)
	})
	t.Run("virtual platform label on an SNP report", func(t *testing.T) {
		e := good.clone()
		e.Platform = PlatformVirtual
		e.CertTable = nil
		p := testPolicy(s)
		p.AllowVirtual = true
		_, err := Verify(ctx, e, key, p)
		wantErr(t, err, ErrMalformed)
	})
	t.Run("unknown platform", func(t *testing.T) {
		e := good.clone()
		e.Platform = "tdx"
		_, err := Verify(ctx, e, key, testPolicy(s))
		wantErr(t, err, ErrPlatform)
	})
	t.Run("bad policy entry", func(t *testing.T) {
		p := testPolicy(s)
		p.Measurements = [][]byte{{1, 2, 3}}
		_, err := Verify(ctx, good, key, p)
		wantErr(t, err, ErrConfig)
	})
}

// The VCEK may come from the operator's cache directory instead of the
// report's certificate table; nothing is fetched from the network.
func TestSNPCertCache(t *testing.T) {
	s := defaultSigner(t)
	key := nodeKey(t)
	ctx := context.Background()
	e := snpEvidence(t, s, key, goodBody())
	e.CertTable = nil

	p := testPolicy(s)
	_, err := Verify(ctx, e, key, p)
	wantErr(t, err, ErrSignature)
	if !strings.Contains(err.Error(), "network fetching is off") {
		t.Errorf("error does not say why: %v", err)
	}

	dir := t.TempDir()
	r, err := abi.ReportToProto(e.Report)
	if err != nil {
		t.Fatal(err)
	}
	name := cachedCertName(abi.VcekReportSigner, r)
	if err := os.WriteFile(filepath.Join(dir, name), s.Vcek.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p.CertCacheDir = dir
	if _, err := Verify(ctx, e, key, p); err != nil {
		t.Fatalf("Verify with %s in the cache: %v", name, err)
	}

	// A certificate from another chain in the cache does not help.
	o := otherSigner(t)
	if err := os.WriteFile(filepath.Join(dir, name), o.Vcek.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ctx, e, key, p)
	wantErr(t, err, ErrSignature)
}

// The provider asks the device once per key: the fake signs afresh on every
// call (ECDSA is randomized), so equal signatures show the cache answered.
func TestSNPProviderCaches(t *testing.T) {
	s := defaultSigner(t)
	key := nodeKey(t)
	p := fakeSNPProvider(t, s, key, goodBody())
	if p.Platform() != PlatformSNP {
		t.Fatal(p.Platform())
	}
	e1, err := p.Evidence(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	e1.Report[0] ^= 0xff // callers get copies
	e2, err := p.Evidence(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	e1.Report[0] ^= 0xff
	if !bytes.Equal(e1.Report, e2.Report) || len(e2.CertTable) == 0 {
		t.Fatal("second Evidence call did not return the cached report")
	}
	// The fake has no report for another key's report_data.
	if _, err := p.Evidence(context.Background(), nodeKey(t)); err == nil {
		t.Fatal("Evidence for another key succeeded against a device that has no report for it")
	}
}
