package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// refuseWhileRecovering answers registrations (POST /entries and
// /entries/batch) and the app (/app/*, /app/commit excepted) 503
// ServiceRecovering while a recovered service is Recovering or
// WaitingForRecoveryShares: until its members open it, the service it
// continues is not confirmed, and its private maps cannot be read. Governance and every read of the public ledger work.
func (s *Server) refuseWhileRecovering(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		registration := r.Method == http.MethodPost && (r.URL.Path == "/entries" || r.URL.Path == registry.BatchPath)
		app := strings.HasPrefix(r.URL.Path, "/app/") && r.URL.Path != "/app/commit"
		if !registration && !app {
			next.ServeHTTP(w, r)
			return
		}
		status := s.cachedServiceStatus()
		if !govwire.Recovering(status) {
			next.ServeHTTP(w, r)
			return
		}
		detail := fmt.Sprintf("the service is %s: it was recovered from a previous network's ledger, and opens when its members vote transition_service_to_open", status)
		if status == govwire.ServiceWaitingForShares {
			detail = fmt.Sprintf("the service is %s: it opens when enough recovery members submit their shares", status)
		}
		if registration {
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceRecovering", Detail: detail, RetryAfter: 30})
			return
		}
		w.Header().Set("Retry-After", "30")
		writeAppError(w, http.StatusServiceUnavailable, "ServiceRecovering", detail)
	})
}

// statusAt is the governed service status as read at a WritesVersion.
type statusAt struct {
	version uint64
	status  string
}

// cachedServiceStatus is the governed service status, re-read only when
// the ledger's maps may have changed (WritesVersion): refuseWhileRecovering
// asks it on every registration, and registrations write no map. The
// version is read before the status, so a change between the two is seen
// by the next call.
func (s *Server) cachedServiceStatus() string {
	v := s.cfg.Ledger.WritesVersion()
	if c := s.status.Load(); c != nil && c.version == v {
		return c.status
	}
	st := s.cfg.Gov.ServiceStatus()
	s.status.Store(&statusAt{version: v, status: st})
	return st
}

// serviceEndorsement is one recovery as /node/network shows it: the
// previous identity and the next one's endorsement of it.
type serviceEndorsement struct {
	Seqno                   uint64 `json:"seqno"`
	PreviousServiceIdentity string `json:"previous_service_identity"`
	ServiceIdentity         string `json:"service_identity"`
	// Endorsement is the COSE_Sign1 (base64) by ServiceIdentity's key over
	// PreviousServiceIdentity (DER): spec/formats.md.
	Endorsement string `json:"endorsement"`
}

// serviceEndorsements lists the service's recoveries, oldest first.
func (s *Server) serviceEndorsements() ([]serviceEndorsement, error) {
	recs, err := s.cfg.Ledger.Recoveries()
	if err != nil {
		return nil, err
	}
	out := make([]serviceEndorsement, 0, len(recs))
	certPEM := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	for _, r := range recs {
		out = append(out, serviceEndorsement{
			Seqno: r.Seqno, PreviousServiceIdentity: certPEM(r.Recovery.PreviousServiceCert),
			ServiceIdentity: certPEM(r.Recovery.ServiceCert), Endorsement: base64.StdEncoding.EncodeToString(r.Recovery.Endorsement),
		})
	}
	return out, nil
}

// submitRecoveryShare is CCF 7's POST
// /gov/recovery/members/{member_id}:recover: a recovery_share request
// (gov.Service.SubmitRecoveryShare).
func (g govAPI) submitRecoveryShare(ctx context.Context, r *http.Request, body []byte) (any, error) {
	member, ok := strings.CutSuffix(chi.URLParam(r, "action"), ":recover")
	if !ok {
		return nil, errNoRoute
	}
	res, err := g.svc.SubmitRecoveryShare(ctx, member, body)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"submittedShares": res.Submitted, "threshold": res.Threshold, "serviceOpened": res.Opened,
		"message": fmt.Sprintf("%d of %d recovery shares submitted", res.Submitted, res.Threshold),
	}
	if res.Opened {
		out["message"] = fmt.Sprintf("%d recovery shares submitted: the ledger secrets are recovered and the service is open", res.Submitted)
		out["transactionId"] = res.TxID.String()
	}
	return out, nil
}
