package apphost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// Config is what a Host runs apps over.
type Config struct {
	Ledger *ledger.Ledger
	Logger *slog.Logger
	// NodeID and ServiceCertPEM go into the receipts of historical states.
	NodeID         uint64
	ServiceCertPEM []byte
	// Secrets returns the ledger secrets once this node holds them (ok
	// false before: a node that joined holds them only once it is
	// trusted).
	Secrets func() (s Secrets, ok bool)
}

// Host keeps the deployed app compiled, and reloads it when governance
// changes the bundle or the runtime options; it runs requests to it.
type Host struct {
	cfg Config
	// inflight: keys the app transactions this node submitted will write.
	inflight inflightWrites
	cipher   atomic.Pointer[Cipher]

	mu      sync.Mutex
	version uint64
	loaded  bool
	raw     []byte // bundle JSON in force
	opts    []byte // runtime options JSON in force
	app     *app.App
	err     error
}

// New returns a Host over cfg's ledger; the app is loaded on first use.
func New(cfg Config) *Host {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Host{cfg: cfg}
}

// Current is the deployed app, or nil if none is; the error says why the
// deployed bundle does not load.
func (h *Host) Current() (*app.App, error) {
	// Read the version first: a write set that lands after this read
	// makes the next call look again.
	v := h.cfg.Ledger.WritesVersion()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loaded && h.version == v {
		return h.app, h.err
	}
	raw, err := h.cfg.Ledger.GetKV(govwire.MapAppBundle, []byte(govwire.KeyAppBundle))
	if errors.Is(err, ledger.ErrNotFound) {
		raw, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	opts, err := h.cfg.Ledger.GetKV(govwire.MapJSRuntimeOptions, []byte(govwire.KeyJSRuntimeOptions))
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
		var o govwire.JSRuntimeOptions
		if err := json.Unmarshal(opts, &o); err == nil {
			ro = app.RuntimeOptions{MaxHeapBytes: o.MaxHeapBytes, MaxStackBytes: o.MaxStackBytes, MaxExecutionTimeMs: o.MaxExecutionTimeMS}
		}
	}
	b, err := app.ParseBundle(raw)
	if err == nil {
		h.app, err = app.Load(b, app.Options{Runtime: ro, Consensus: consensus{h}, Historical: historical{h}, Logger: h.cfg.Logger.With("component", "app")})
	}
	if err != nil {
		h.err = fmt.Errorf("the deployed app does not load: %w", err)
		h.cfg.Logger.Error("loading the JS app", "err", err)
	}
	return h.app, h.err
}

// ErrNoSecret is Cipher's error on a node that does not hold the ledger
// secret yet, and so can neither read nor write the private maps.
var ErrNoSecret = errors.New("this node does not hold the ledger secret")

// Cipher is the private-map cipher for the ledger secret, or ErrNoSecret.
func (h *Host) Cipher() (*Cipher, error) {
	if c := h.cipher.Load(); c != nil {
		return c, nil
	}
	src, ok := h.cfg.Secrets()
	if !ok {
		return nil, ErrNoSecret
	}
	c, err := newCipher(src)
	if err != nil {
		return nil, err
	}
	h.cipher.Store(c)
	return c, nil
}

// LastCommitted is the last committed transaction (0, 0 for none): what a
// request that wrote nothing answers with, and CCF's GET /app/commit.
func (h *Host) LastCommitted() (view, seqno uint64) {
	st := h.cfg.Ledger.State()
	if st.Size == 0 {
		return 0, 0
	}
	rec, err := h.cfg.Ledger.Record(st.Size)
	if err != nil {
		return 0, 0
	}
	return rec.View, rec.Seqno
}

// consensus is ccf.consensus: this node's view of the ledger.
type consensus struct{ h *Host }

func (c consensus) LastCommitted() (view, seqno uint64) { return c.h.LastCommitted() }

func (c consensus) Status(view, seqno uint64) string {
	s, err := c.h.cfg.Ledger.Status(log.TxID{View: view, Seqno: seqno})
	if err != nil {
		return app.StatusUnknown
	}
	return string(s)
}

func (c consensus) ViewOf(seqno uint64) (uint64, bool) {
	rec, err := c.h.cfg.Ledger.Record(seqno)
	if err != nil {
		return 0, false
	}
	return rec.View, true
}
