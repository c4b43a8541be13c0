package httpapi

import (
	"cmp"
	"encoding/hex"
	"net/http"
	"slices"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/join"
)

const (
	pathQuoteSelf = "/node/quotes/self"
	pathQuotes    = "/node/quotes"
)

// getQuoteSelf serves this node's evidence: the platform, the raw evidence
// (canonical CBOR, base64) and what it declares, so that anyone can check
// that the node's TLS key is the one its report binds.
func (s *Server) getQuoteSelf(w http.ResponseWriter, r *http.Request) {
	b, err := attest.MarshalEvidence(s.cfg.Evidence)
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	rd, err := attest.ReportData(s.cfg.NodeKey)
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node_id":     s.cfg.NodeID,
		"platform":    s.cfg.Evidence.Platform,
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
func (s *Server) getQuotes(w http.ResponseWriter, r *http.Request) {
	recs, err := join.Records(s.cfg.Ledger)
	if err != nil {
		writeError(w, r, problemFor(err))
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
