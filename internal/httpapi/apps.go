package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/appauth"
	"github.com/charterlog/charter/internal/apphost"
)

// The JS application governance deployed (set_js_app), served under /app:
// each request is authenticated with its endpoint's policies, run once on
// the leader in a fresh interpreter against the committed state, and, if
// it wrote anything, committed as one TxApp transaction whose reads are
// checked when it applies (a conflict runs the request again). See
// spec/apps.md.

// headerTxID is CCF's response header naming a request's transaction.
const headerTxID = "x-ms-ccf-transaction-id"

// headerForwardedClientCert carries, from a node that forwards an app
// request to the leader, the certificate its client presented (base64
// DER). The leader believes it only from another node.
const headerForwardedClientCert = "Charter-Forwarded-Client-Cert"

// maxAppBody bounds an app request's body.
const maxAppBody = 8 << 20

// getAppCommit is CCF's GET /app/commit: the last committed transaction.
func (s *Server) getAppCommit(w http.ResponseWriter, r *http.Request) {
	view, seqno := s.cfg.Apps.LastCommitted()
	writeJSON(w, http.StatusOK, map[string]string{"transaction_id": app.FormatTxID(view, seqno)})
}

// serveApp runs a request to the deployed app.
func (s *Server) serveApp(w http.ResponseWriter, r *http.Request) {
	a, err := s.cfg.Apps.Current()
	if err != nil {
		writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/app")
	if a == nil {
		writeAppError(w, http.StatusNotFound, "ResourceNotFound", "Unknown path: "+r.URL.Path+" (no app is deployed: governance deploys one with set_js_app)")
		return
	}
	ep, params, ok := a.Match(r.Method, path)
	if !ok {
		if methods := a.Methods(path); len(methods) > 0 {
			w.Header().Set("Allow", strings.Join(methods, ", "))
			writeAppError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", fmt.Sprintf("Allowed methods for '%s' are: %s", r.URL.Path, strings.Join(methods, ", ")))
			return
		}
		writeAppError(w, http.StatusNotFound, "ResourceNotFound", "Unknown path: "+r.URL.Path)
		return
	}
	// Only a trusted node's word on its client's certificate is believed.
	fromPeer := s.trustedPeer(r)
	if !fromPeer {
		r.Header.Del(headerForwardedClientCert)
	}
	if leader, _ := s.cfg.Raft.Leader(); !leader && s.cfg.Forward && mustForward(ep) {
		if r.Header.Get(headerForwarded) != "" && fromPeer {
			writeRelayProblem(w, r.URL.Path, errForwardedTwice)
			return
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && !fromPeer {
			r.Header.Set(headerForwardedClientCert, base64.StdEncoding.EncodeToString(r.TLS.PeerCertificates[0].Raw))
		}
		s.proxyToLeader(w, r)
		return
	}
	c, err := s.cfg.Apps.Cipher()
	if errors.Is(err, apphost.ErrNoSecret) {
		writeAppError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "this node is not trusted yet and cannot read the app's private maps; send the request to another node")
		return
	}
	if err != nil {
		writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAppBody+1))
	if err != nil {
		writeAppError(w, http.StatusBadRequest, "InvalidInput", "reading the body: "+err.Error())
		return
	}
	if len(body) > maxAppBody {
		writeAppError(w, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", fmt.Sprintf("a request body is at most %d bytes", maxAppBody))
		return
	}
	authReq := r
	if fwd := r.Header.Get(headerForwardedClientCert); fwd != "" {
		der, err := base64.StdEncoding.DecodeString(fwd)
		cert, err2 := x509.ParseCertificate(der)
		if err != nil || err2 != nil {
			writeAppError(w, http.StatusBadRequest, "InvalidInput", "the forwarded client certificate does not parse")
			return
		}
		authReq = r.Clone(r.Context())
		authReq.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	} else if fromPeer {
		// A node's own certificate is not a caller identity.
		authReq = r.Clone(r.Context())
		authReq.TLS = &tls.ConnectionState{}
	}
	caller, err := (&appauth.Authenticator{State: s.cfg.Ledger}).Authenticate(authReq, body, ep.Info.AuthnPolicies)
	if err != nil {
		writeAuthError(w, err)
		return
	}
	req := &app.Request{
		Method: r.Method, Path: path, Query: r.URL.RawQuery, URL: r.URL.RequestURI(), Hostname: r.Host,
		Route: ep.Template, Headers: map[string]string{}, Params: params, Body: body,
	}
	if caller != nil {
		req.Caller = caller
	}
	for k, v := range r.Header {
		if len(v) > 0 && !strings.EqualFold(k, headerForwardedClientCert) && !strings.EqualFold(k, headerForwarded) {
			req.Headers[strings.ToLower(k)] = v[0]
		}
	}
	if ep.Info.Mode == app.ModeHistorical {
		hs, err := s.cfg.Apps.HistoricalFor(r.Header.Get(headerTxID), c)
		if err != nil {
			writeHistoricalError(w, err, r.Header.Get(headerTxID))
			return
		}
		req.HistoricalState = hs
	}
	res, txid, err := s.cfg.Apps.Execute(r.Context(), a, ep, req, c)
	if err != nil {
		writeExecuteError(w, err)
		return
	}
	for k, v := range res.Headers {
		w.Header().Set(k, v)
	}
	w.Header().Set(headerTxID, txid.String())
	w.WriteHeader(res.StatusCode)
	if res.Body != nil {
		_, _ = w.Write(res.Body)
	}
}

// mustForward says whether a follower hands the request to the leader:
// writes always (only the leader runs them), and reads when the endpoint
// asks for the leader's view (forwarding_required: always).
func mustForward(ep *app.Endpoint) bool {
	if ep.ReadOnly() {
		return ep.Info.ForwardingRequired == "always"
	}
	return true
}
