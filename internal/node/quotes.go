package node

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/registry"
)

// Platforms a node can attest on.
const (
	PlatformVirtual = "virtual"
	PlatformSNP     = "sev-snp"
)

// nodeEvidence produces this node's attestation evidence for its node key,
// once, at start. On the virtual platform the declared measurement is
// SHA-384 of the running charterd binary: it names the code without any
// hardware claim, so a consortium can still compare it with the build it
// approved.
func nodeEvidence(ctx context.Context, platform string, nodeKey *ecdsa.PrivateKey) (*attest.Evidence, error) {
	var p attest.Provider
	switch platform {
	case "", PlatformVirtual:
		m, err := executableDigest()
		if err != nil {
			return nil, err
		}
		p = attest.NewVirtualProvider(m, nil)
	case PlatformSNP:
		var err error
		if p, err = attest.NewSNPProvider(); err != nil {
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

const (
	pathQuoteSelf = "/node/quotes/self"
	pathQuotes    = "/node/quotes"
)

// getQuoteSelf serves this node's evidence: the platform, the raw evidence
// (canonical CBOR, base64) and what it declares, so that anyone can check
// that the node's TLS key is the one its report binds.
func (n *Node) getQuoteSelf(w http.ResponseWriter, r *http.Request) {
	b, err := attest.MarshalEvidence(n.evidence)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	rd, err := attest.ReportData(&n.nodeKey.PublicKey)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node_id":     n.cfg.NodeID,
		"platform":    n.evidence.Platform,
		"evidence":    b,
		"report_data": hex.EncodeToString(rd[:]),
	})
}

// quoteView is one node's recorded evidence as GET /node/quotes serves it.
type quoteView struct {
	NodeID      uint64 `json:"node_id"`
	Status      string `json:"status"`
	Platform    string `json:"platform"`
	Evidence    []byte `json:"evidence"`
	PublicKey   string `json:"public_key"`
	Measurement string `json:"measurement"`
	HostData    string `json:"host_data"`
	URL         string `json:"url,omitempty"`
}

// getQuotes serves every node's evidence as recorded in the ledger
// (public:ccf.gov.nodes.info), verified when it was recorded; `charter node
// verify-quotes` verifies it again, offline.
func (n *Node) getQuotes(w http.ResponseWriter, r *http.Request) {
	recs, err := join.Records(n.ledger)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	out := []quoteView{}
	for id, rec := range recs {
		if rec.QuoteInfo == nil {
			continue
		}
		out = append(out, quoteView{NodeID: id, Status: rec.Status, Platform: rec.QuoteInfo.Format, Evidence: rec.QuoteInfo.Evidence,
			PublicKey: rec.PublicKey, Measurement: rec.Measurement, HostData: rec.HostData, URL: rec.URL})
	}
	slices.SortFunc(out, func(a, b quoteView) int { return cmp.Compare(a.NodeID, b.NodeID) })
	writeJSON(w, http.StatusOK, map[string]any{"quotes": out})
}
