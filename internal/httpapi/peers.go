package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/registry"
)

type peerContextKey struct{}

// requirePeer admits only the network's nodes (Config.IdentifyPeer) and hands the
// peer to the handler through the request's context.
func (s *Server) requirePeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Who a peer is, and in which role, is read from the maps an
		// install is rewriting: the sender retries.
		if s.installing(w, r) {
			return
		}
		p, err := s.requestPeer(r)
		if err != nil {
			if !errors.Is(err, peer.ErrNotPeer) {
				writeError(w, r, problemFor(err))
				return
			}
			writeError(w, r, &registry.Problem{Status: http.StatusForbidden, Title: "Forbidden",
				Detail: "this endpoint is for the network's nodes: " + err.Error()})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerContextKey{}, p)))
	})
}

// requestPeer identifies the node that made r by its TLS client
// certificate.
func (s *Server) requestPeer(r *http.Request) (peer.Peer, error) {
	if p, ok := r.Context().Value(peerContextKey{}).(peer.Peer); ok {
		return p, nil
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return peer.Peer{}, fmt.Errorf("%w: present the node's certificate", peer.ErrNotPeer)
	}
	return s.cfg.IdentifyPeer(r.TLS.PeerCertificates[0])
}

// trustedPeer reports whether r's TLS client is a node the network trusts:
// only such a node's word on its own client's identity is believed, and
// only its forwarded requests are treated as forwarded.
func (s *Server) trustedPeer(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	p, err := s.requestPeer(r)
	return err == nil && p.Trusted()
}

// peerHandler answers a peer's raft request: 204, or a problem (400 for a
// malformed message, 403 for one the peer may not send, 503 while
// stopping).
func (s *Server) peerHandler(receive func(*replication.Node, *http.Request, replication.Sender) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.peerOf(w, r)
		if !ok {
			return
		}
		if err := receive(s.cfg.Raft, r, p.Sender()); err != nil {
			s.writePeerError(w, p, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// peerQuery serves a peer's GET with what answer returns for it.
func (s *Server) peerQuery(answer func(replication.Sender) ([]byte, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.peerOf(w, r)
		if !ok {
			return
		}
		body, err := answer(p.Sender())
		if err != nil {
			s.writePeerError(w, p, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(body)
	}
}

// getHistory serves a range of the ledger's history to a node that is
// backfilling (peer.PathHistory). Only a node the network trusts may
// read it: the history holds every statement, and an untrusted node (one
// that joined and was not yet trusted) is not sent the ledger by raft
// either.
func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	p, ok := s.peerOf(w, r)
	if !ok {
		return
	}
	if !p.Trusted() {
		writeError(w, r, &registry.Problem{Status: http.StatusForbidden, Title: "Forbidden",
			Detail: fmt.Sprintf("node %d is not trusted by the network and may not read its history", p.ID)})
		return
	}
	body, err := peer.ServeHistory(s.cfg.Raft, r)
	if err != nil {
		s.writePeerError(w, p, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(body)
}

// peerOf returns the peer requirePeer established, or refuses the request.
func (s *Server) peerOf(w http.ResponseWriter, r *http.Request) (peer.Peer, bool) {
	p, ok := r.Context().Value(peerContextKey{}).(peer.Peer)
	if !ok {
		writeError(w, r, &registry.Problem{Status: http.StatusForbidden, Title: "Forbidden", Detail: "this endpoint is for the network's nodes"})
	}
	return p, ok
}
