package httpapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// govAPI serves governance (CCF's member endpoints) over svc.
type govAPI struct {
	svc *gov.Service
	log *slog.Logger
	// node, if set, tells /gov/service/info the service's certificate and
	// creation transaction (the node's, not governance's, to know).
	node *Server
	// trustedPeer says whether a request comes from another node of the
	// network, whose word on its client's certificate is believed
	// (clientCert). Nil: none does.
	trustedPeer func(*http.Request) bool
}

// GovRoutes adds the governance API (CCF 7's, gov_v7.go, and the classic
// one, gov_classic.go) over svc to r. Every write is a COSE_Sign1 request
// signed by a member (application/cose). A nil log discards.
func GovRoutes(r chi.Router, svc *gov.Service, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	govAPI{svc: svc, log: log}.routes(r)
}

func (g govAPI) routes(r chi.Router) {
	g.v7Routes(r)
	g.classicRoutes(r)
}

var errNoRoute = errors.New("no such governance endpoint")

// maxBody bounds a governance request (proposals can carry JS).
const maxBody = govwire.MaxRequestBytes

// opTimeout bounds one governance operation.
const opTimeout = 30 * time.Second

// readRequest reads a governance request's body: a COSE_Sign1 of at most
// maxBody bytes.
func readRequest(w http.ResponseWriter, r *http.Request) ([]byte, *registry.Problem) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/cose" {
		return nil, &registry.Problem{Status: http.StatusUnsupportedMediaType, Title: "UnsupportedContentType",
			Detail: "governance requests are COSE_Sign1 signed by a member: Content-Type application/cose"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, &registry.Problem{Status: http.StatusRequestEntityTooLarge, Title: "RequestBodyTooLarge",
			Detail: fmt.Sprintf("governance requests are at most %d bytes", maxBody)}
	}
	return body, nil
}

// problem maps err, logging server-side failures.
func (g govAPI) problem(r *http.Request, err error) *registry.Problem {
	p := problemFor(err)
	if p.Status >= 500 {
		g.log.Warn("governance request failed", "path", r.URL.Path, "err", err)
	}
	return p
}
