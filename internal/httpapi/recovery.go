package httpapi

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/recovery"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// The recovery members' encrypted shares and the sharing they belong to
// (spec/recovery.md), read from the applied state. Anyone may read them
// (spec/security.md): each share is encrypted to its member's key, and
// both are in the public ledger that any reader downloads anyway.
//
//	GET /gov/recovery/encrypted-shares/{member_id} → {"memberId", "encryptedShare"} (CCF 7)
//	GET /gov/encrypted_recovery_share/{member_id}  → {"encrypted_share"}            (CCF classic)
//	GET /gov/recovery/sharing                      → the commitment a share is checked against
func (s *Server) recoveryRoutes(r chi.Router) {
	r.Get("/gov/recovery/encrypted-shares/{member_id}", func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "member_id")
		share, p := s.encryptedShare(id)
		if p != nil {
			registry.WriteProblem(w, p)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"memberId": id, "encryptedShare": share})
	})
	r.Get("/gov/encrypted_recovery_share/{member_id}", func(w http.ResponseWriter, r *http.Request) {
		share, p := s.encryptedShare(chi.URLParam(r, "member_id"))
		if p != nil {
			writeCCFError(w, p)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"encrypted_share": share})
	})
	r.Get("/gov/recovery/sharing", s.getRecoverySharing)
}

// RecoverySharing is GET /gov/recovery/sharing's answer: what a member
// checks its decrypted share against.
type RecoverySharing struct {
	Threshold           int      `json:"threshold"`
	Commitment          []byte   `json:"commitment"` // base64
	Members             []string `json:"members"`
	LedgerSecretVersion uint64   `json:"ledgerSecretVersion"`
	Basis               string   `json:"basis"`
}

func (s *Server) getRecoverySharing(w http.ResponseWriter, r *http.Request) {
	raw, err := s.cfg.Ledger.GetKV(recovery.MapSharing, []byte(recovery.KeySharing))
	if errors.Is(err, ledger.ErrNotFound) {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "NoRecoverySharing",
			Detail: "the ledger holds no recovery sharing: no recovery threshold is set, or fewer members with an encryption key than the threshold"})
		return
	}
	var rec recovery.SharingRecord
	if err == nil {
		err = json.Unmarshal(raw, &rec)
	}
	if err != nil {
		s.cfg.Log.Warn("reading the recovery sharing", "err", err)
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusInternalServerError, Title: "InternalError", Detail: "the recovery sharing could not be read"})
		return
	}
	writeJSON(w, http.StatusOK, RecoverySharing{Threshold: rec.Threshold, Commitment: rec.Commitment, Members: rec.Members,
		LedgerSecretVersion: rec.LedgerSecretVersion, Basis: rec.Basis})
}

// encryptedShare is member id's encrypted share, or the problem that
// answers for it. Member ids are 64 hex digits, checked before any read.
func (s *Server) encryptedShare(id string) ([]byte, *registry.Problem) {
	if b, err := hex.DecodeString(id); err != nil || len(b) != 32 || hex.EncodeToString(b) != id {
		return nil, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidMemberId",
			Detail: "a member id is the 64 lower-case hex digits of the SHA-256 of its certificate"}
	}
	raw, err := s.cfg.Ledger.GetKV(recovery.MapShares, []byte(id))
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, &registry.Problem{Status: http.StatusNotFound, Title: "NotRecoveryMember",
			Detail: "member " + id + " holds no recovery share: it is not an active member with an encryption key, or no sharing was made yet"}
	}
	var rec recovery.ShareRecord
	if err == nil {
		err = json.Unmarshal(raw, &rec)
	}
	if err != nil {
		s.cfg.Log.Warn("reading a recovery share", "member", id, "err", err)
		return nil, &registry.Problem{Status: http.StatusInternalServerError, Title: "InternalError", Detail: "the recovery share could not be read"}
	}
	return rec.EncryptedShare, nil
}
