package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/appauth"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
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

// maxConflictRetries is how often a request that lost a race to another
// transaction is run again before the client is told to retry. After the
// first few, each re-run waits a moment at random, so that requests racing
// for the same keys stop meeting in lockstep.
const maxConflictRetries = 64

// appHost keeps the deployed app compiled, and reloads it when governance
// changes the bundle or the runtime options.
type appHost struct {
	n *Node

	mu      sync.Mutex
	version uint64
	loaded  bool
	raw     []byte // bundle JSON in force
	opts    []byte // runtime options JSON in force
	app     *app.App
	err     error
}

func (h *appHost) current() (*app.App, error) {
	// Read the version first: a write set that lands after this read
	// makes the next call look again.
	v := h.n.ledger.WritesVersion()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loaded && h.version == v {
		return h.app, h.err
	}
	raw, err := h.n.ledger.GetKV(gov.MapAppBundle, []byte(gov.KeyAppBundle))
	if errors.Is(err, ledger.ErrNotFound) {
		raw, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	opts, err := h.n.ledger.GetKV(gov.MapJSRuntimeOptions, []byte(gov.KeyJSRuntimeOptions))
	if errors.Is(err, ledger.ErrNotFound) {
		opts, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	h.version, h.loaded = v, true
	if h.app != nil && bytes.Equal(raw, h.raw) && bytes.Equal(opts, h.opts) {
		return h.app, h.err
	}
	h.raw, h.opts, h.app, h.err = raw, opts, nil, nil
	if raw == nil {
		return nil, nil
	}
	var ro app.RuntimeOptions
	if opts != nil {
		var o gov.JSRuntimeOptions
		if err := json.Unmarshal(opts, &o); err == nil {
			ro = app.RuntimeOptions{MaxHeapBytes: o.MaxHeapBytes, MaxStackBytes: o.MaxStackBytes, MaxExecutionTimeMs: o.MaxExecutionTimeMS}
		}
	}
	b, err := app.ParseBundle(raw)
	if err == nil {
		h.app, err = app.Load(b, app.Options{Runtime: ro, Consensus: appConsensus{h.n}, Historical: appHistorical{h.n}, Logger: h.n.log.With("component", "app")})
	}
	if err != nil {
		h.err = fmt.Errorf("the deployed app does not load: %w", err)
		h.n.log.Error("loading the JS app", "err", err)
	}
	return h.app, h.err
}

// writeAppError answers in CCF's error shape.
func writeAppError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// getAppCommit is CCF's GET /app/commit: the last committed transaction.
func (n *Node) getAppCommit(w http.ResponseWriter, r *http.Request) {
	view, seqno := appConsensus{n}.LastCommitted()
	writeJSON(w, http.StatusOK, map[string]string{"transaction_id": app.FormatTxID(view, seqno)})
}

// serveApp runs a request to the deployed app.
func (n *Node) serveApp(w http.ResponseWriter, r *http.Request) {
	a, err := n.apps.current()
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
	fromPeer := n.trustedPeer(r)
	if !fromPeer {
		r.Header.Del(headerForwardedClientCert)
	}
	if leader, _ := n.raft.Leader(); !leader && n.transport != nil && mustForward(ep) {
		if r.Header.Get(headerForwarded) != "" && fromPeer {
			writeRelayProblem(w, r.URL.Path, errForwardedTwice)
			return
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && !fromPeer {
			r.Header.Set(headerForwardedClientCert, base64.StdEncoding.EncodeToString(r.TLS.PeerCertificates[0].Raw))
		}
		n.proxyToLeader(w, r)
		return
	}
	full := n.full.Load()
	if full == nil {
		writeAppError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "this node is not trusted yet and cannot read the app's private maps; send the request to another node")
		return
	}
	c, err := n.ledgerCipher(full)
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
	caller, err := (&appauth.Authenticator{State: n.ledger}).Authenticate(authReq, body, ep.Info.AuthnPolicies)
	if err != nil {
		var ae *appauth.Error
		if errors.As(err, &ae) {
			writeAppError(w, ae.Status, ae.Code, ae.Message)
			return
		}
		writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
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
		hs, status := n.historicalFor(r.Header.Get(headerTxID), c)
		if status != 0 {
			if status == http.StatusAccepted {
				w.Header().Set("Retry-After", "1")
			}
			writeAppError(w, status, "TransactionPendingOrUnknown", "the historical state for "+headerTxID+" "+r.Header.Get(headerTxID)+" is not available (yet)")
			return
		}
		req.HistoricalState = hs
	}
	n.runApp(w, r.Context(), a, ep, req, c)
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

// runApp runs the handler, commits its writes and answers.
func (n *Node) runApp(w http.ResponseWriter, ctx context.Context, a *app.App, ep *app.Endpoint, req *app.Request, c *ledgerCipher) {
	for attempt := 0; ; attempt++ {
		st := newAppState(n.ledger, c)
		res, err := a.Call(ctx, ep, req, app.NewTx(st))
		if err != nil {
			if errors.Is(err, app.ErrException) {
				n.log.Warn("app handler failed", "endpoint", ep.Name(), "err", err)
				writeAppError(w, http.StatusInternalServerError, "InternalError", "Exception thrown while executing.")
				return
			}
			writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
			return
		}
		var txid log.TxID
		if res.WriteSet != nil && len(res.WriteSet.Writes) > 0 && !res.ReadOnly {
			writes, err := storedWrites(c, res.WriteSet.Writes)
			if err != nil {
				writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
				return
			}
			reads := st.Reads()
			if wait := n.inflight.busy(reads); wait != nil && attempt < maxConflictRetries {
				// A transaction ahead of this one writes what it read:
				// run again once that has applied (inflightWrites).
				select {
				case <-wait:
				case <-ctx.Done():
					return
				}
				continue
			}
			release := n.inflight.hold(writes)
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			txid, err = n.ledger.SubmitApp(sctx, &log.AppTx{Writes: writes, Reads: reads, ClaimsDigest: res.ClaimsDigest})
			cancel()
			release()
			if errors.Is(err, ledger.ErrConflict) && attempt < maxConflictRetries {
				if attempt >= 4 {
					if sleep(ctx, time.Duration(rand.Int64N(int64(2*time.Millisecond)))) != nil {
						return
					}
				}
				continue
			}
			if err != nil {
				status, code := http.StatusServiceUnavailable, "ServiceUnavailable"
				if errors.Is(err, ledger.ErrConflict) {
					code = "TransactionConflict"
				}
				w.Header().Set("Retry-After", "1")
				if errors.Is(err, ledger.ErrOutcomeUnknown) {
					writeAppError(w, status, code, "the transaction's outcome is unknown: "+err.Error()+"; it may have been applied: check before retrying")
					return
				}
				writeAppError(w, status, code, "the transaction did not commit: "+err.Error()+"; retry")
				return
			}
		} else {
			view, seqno := appConsensus{n}.LastCommitted()
			txid = log.TxID{View: view, Seqno: seqno}
		}
		for k, v := range res.Headers {
			w.Header().Set(k, v)
		}
		w.Header().Set(headerTxID, txid.String())
		w.WriteHeader(res.StatusCode)
		if res.Body != nil {
			_, _ = w.Write(res.Body)
		}
		return
	}
}

// ledgerCipher is the private-map cipher for the ledger secret id holds.
func (n *Node) ledgerCipher(id *Identity) (*ledgerCipher, error) {
	if c := n.cipher.Load(); c != nil {
		return c, nil
	}
	c, err := newLedgerCipher(id.LedgerSecret)
	if err != nil {
		return nil, err
	}
	n.cipher.Store(c)
	return c, nil
}

// appConsensus is ccf.consensus: this node's view of the ledger.
type appConsensus struct{ n *Node }

func (c appConsensus) LastCommitted() (view, seqno uint64) {
	st := c.n.ledger.State()
	if st.Size == 0 {
		return 0, 0
	}
	rec, err := c.n.ledger.Record(st.Size)
	if err != nil {
		return 0, 0
	}
	return rec.View, rec.Seqno
}

func (c appConsensus) Status(view, seqno uint64) string {
	s, err := c.n.ledger.Status(log.TxID{View: view, Seqno: seqno})
	if err != nil {
		return app.StatusUnknown
	}
	return string(s)
}

func (c appConsensus) ViewOf(seqno uint64) (uint64, bool) {
	rec, err := c.n.ledger.Record(seqno)
	if err != nil {
		return 0, false
	}
	return rec.View, true
}

// appHistorical is ccf.historical. A transaction's historical state is
// ready once a checkpoint covers it; its KV holds the writes of that
// transaction only (not the whole state as of it), decrypted.
type appHistorical struct{ n *Node }

func (h appHistorical) StateRange(_, from, to uint64, _ time.Duration) ([]app.HistoricalState, bool, error) {
	if from == 0 || to < from || to-from >= 1000 {
		return nil, false, fmt.Errorf("historical range %d..%d: want 1 ≤ from ≤ to, at most 1000", from, to)
	}
	if st := h.n.ledger.State(); to > st.Size {
		return nil, false, nil
	}
	full := h.n.full.Load()
	if full == nil {
		return nil, false, errors.New("this node does not hold the ledger secret")
	}
	c, err := h.n.ledgerCipher(full)
	if err != nil {
		return nil, false, err
	}
	var out []app.HistoricalState
	for s := from; s <= to; s++ {
		hs, err := h.n.historicalState(s, c)
		if errors.Is(err, ledger.ErrNotCovered) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, *hs)
	}
	return out, true, nil
}

func (appHistorical) DropCachedStates(uint64) (bool, error) {
	// Nothing is cached: states are built from the ledger on each request.
	return false, nil
}

// historicalState is the state of transaction seqno with its receipt.
func (n *Node) historicalState(seqno uint64, c *ledgerCipher) (*app.HistoricalState, error) {
	rec, err := n.ledger.Record(seqno)
	if err != nil {
		return nil, err
	}
	inc, err := n.ledger.Proof(seqno)
	if err != nil {
		return nil, err
	}
	var writes []log.Write
	var claims []byte
	switch rec.Type {
	case log.TxApp:
		t, err := log.UnmarshalAppTx(rec.Body)
		if err != nil {
			return nil, err
		}
		writes, claims = t.Writes, t.ClaimsDigest
	case log.TxWrites:
		ws, err := log.UnmarshalWriteSet(rec.Body)
		if err != nil {
			return nil, err
		}
		writes = ws.Writes
	}
	kv, err := newTxWritesState(c, writes)
	if err != nil {
		return nil, err
	}
	body := sha256.Sum256(rec.Body)
	receipt := app.Receipt{
		Signature: base64.StdEncoding.EncodeToString(inc.Checkpoint.Signature),
		Cert:      string(n.id.ServiceCertPEM),
		NodeID:    fmt.Sprint(n.cfg.NodeID),
		Proof:     proofSteps(inc.LeafIndex, inc.Checkpoint.TreeSize, inc.Path),
		LeafComponents: app.LeafComponents{
			WriteSetDigest: hex.EncodeToString(body[:]),
			CommitEvidence: fmt.Sprintf("charter:%s:%x", rec.TxID(), rec.Entry),
		},
	}
	if len(claims) > 0 {
		receipt.LeafComponents.ClaimsDigest = hex.EncodeToString(claims)
	}
	return &app.HistoricalState{TxID: rec.TxID().String(), Receipt: receipt, KV: kv}, nil
}

// proofSteps orients an RFC 9162 inclusion path as CCF's receipt proof:
// each hash is the left or the right sibling on the way up.
func proofSteps(index, size uint64, path [][]byte) []app.ProofStep {
	var out []app.ProofStep
	fn, sn := index, size-1
	for _, p := range path {
		h := hex.EncodeToString(p)
		if fn%2 == 1 || fn == sn {
			out = append(out, app.ProofStep{Left: h})
			if fn%2 == 0 {
				for fn%2 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			out = append(out, app.ProofStep{Right: h})
		}
		fn >>= 1
		sn >>= 1
	}
	return out
}

// historicalFor resolves the x-ms-ccf-transaction-id of a historical
// request: the state, or a status to answer (202 while not yet available,
// 400 for a malformed id, 404 for an unknown one).
func (n *Node) historicalFor(raw string, c *ledgerCipher) (*app.HistoricalState, int) {
	txid, err := log.ParseTxID(raw)
	if err != nil {
		return nil, http.StatusBadRequest
	}
	rec, err := n.ledger.Record(txid.Seqno)
	if errors.Is(err, ledger.ErrNotFound) {
		if txid.Seqno > n.ledger.State().Size {
			return nil, http.StatusAccepted
		}
		return nil, http.StatusNotFound
	}
	if err != nil || rec.View != txid.View {
		return nil, http.StatusNotFound
	}
	hs, err := n.historicalState(txid.Seqno, c)
	if errors.Is(err, ledger.ErrNotCovered) {
		return nil, http.StatusAccepted
	}
	if err != nil {
		return nil, http.StatusInternalServerError
	}
	return hs, 0
}
