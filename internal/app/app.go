package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/charterlog/charter/policy"
)

// RuntimeOptions are CCF's JS runtime options (the set_js_runtime_options
// governance action). Zero fields take the sandbox defaults.
type RuntimeOptions struct {
	MaxHeapBytes       uint64 `json:"max_heap_bytes,omitempty"`
	MaxStackBytes      uint64 `json:"max_stack_bytes,omitempty"`
	MaxExecutionTimeMs uint64 `json:"max_execution_time_ms,omitempty"`
}

// stackFrameBytes converts max_stack_bytes to a call depth: sobek bounds
// the number of JS frames, not bytes, so CCF's default of 1 MiB becomes
// the sandbox's default depth of 1024.
const stackFrameBytes = 1024

// Limits maps the options onto the sandbox's limits: max_execution_time_ms
// → Timeout (CPU time of one call, module evaluation included),
// max_heap_bytes → MaxMemoryBytes (Go heap growth during the call; see
// package policy for its precision), max_stack_bytes → MaxCallStack
// (max_stack_bytes / 1024 frames, at least 16).
func (o RuntimeOptions) Limits() policy.Limits {
	var l policy.Limits
	if o.MaxExecutionTimeMs > 0 {
		l.Timeout = time.Duration(min(o.MaxExecutionTimeMs, uint64(1<<40))) * time.Millisecond
	}
	l.MaxMemoryBytes = o.MaxHeapBytes
	if o.MaxStackBytes > 0 {
		l.MaxCallStack = int(max(min(o.MaxStackBytes/stackFrameBytes, 1<<20), 16))
	}
	return l
}

// Options configure an App.
type Options struct {
	// Runtime bounds each call.
	Runtime RuntimeOptions
	// Consensus backs ccf.consensus; nil makes its functions throw.
	Consensus Consensus
	// Historical backs ccf.historical; nil makes its functions throw.
	Historical Historical
	// Logger receives console output (with the endpoint as "endpoint") and
	// is never nil after Load (slog.Default()).
	Logger *slog.Logger
}

// App is a loaded application: compiled modules and routed endpoints. It
// is immutable and safe for concurrent use.
type App struct {
	bundle    *Bundle
	mods      *policy.Modules
	opts      Options
	endpoints []*Endpoint // sorted by Name
}

// Endpoint is one method on one URL template.
type Endpoint struct {
	Method   string // upper case, e.g. "POST"
	Template string // e.g. "/transfer/{account_name}"
	Info     *EndpointInfo
	segs     []string // template segments; params as "{name}"
}

// Name is CCF's endpoint key, "METHOD /template".
func (e *Endpoint) Name() string { return e.Method + " " + e.Template }

// ReadOnly reports whether the endpoint may not write (mode readonly or
// historical).
func (e *Endpoint) ReadOnly() bool { return e.Info.Mode != ModeReadWrite }

// CheckBundle is what set_js_app checks at proposal time beyond the
// bundle's JSON shape (gov.Config.ValidateApp): the bundle is well-formed,
// every module compiles and links, and every endpoint's module exports its
// function. It loads the bundle and drops it, logging nothing.
func CheckBundle(raw []byte) error {
	b, err := ParseBundle(raw)
	if err != nil {
		return err
	}
	_, err = Load(b, Options{Logger: slog.New(slog.DiscardHandler)})
	return err
}

// Load compiles every module of b with the policy sandbox and checks every
// endpoint: its module exists and exports its function, and the module's
// top-level code runs (on an empty state) and leaves that export a
// function. It is what governance runs when a set_js_app proposal is
// validated, so its errors are meant for the proposer, e.g.
//
//	app: endpoint "POST /transfer/{account_name}": module "endpoints/banking.js" does not export "transfer"
func Load(b *Bundle, opts Options) (*App, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	srcs := make(map[string]string, len(b.Modules))
	for _, m := range b.Modules {
		srcs[m.Name] = m.Module
	}
	mods, err := policy.CompileModules("app", srcs, opts.Runtime.Limits())
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	a := &App{bundle: b, mods: mods, opts: opts}
	for _, url := range sortedKeys(b.Metadata.Endpoints) {
		for _, method := range sortedKeys(b.Metadata.Endpoints[url]) {
			info := b.Metadata.Endpoints[url][method]
			ep := &Endpoint{Method: strings.ToUpper(method), Template: url, Info: info, segs: splitPath(url)}
			exports, err := mods.Exports(info.JSModule)
			if err != nil {
				return nil, fmt.Errorf("app: endpoint %q: %w", ep.Name(), err)
			}
			if !slices.Contains(exports, info.JSFunction) {
				return nil, fmt.Errorf("app: endpoint %q: module %q does not export %q", ep.Name(), info.JSModule, info.JSFunction)
			}
			a.endpoints = append(a.endpoints, ep)
		}
	}
	// Run each endpoint module's top level once, as a request would, to
	// find throws and exports that are not functions now rather than at the
	// first request.
	fns := map[string][]string{}
	for _, ep := range a.endpoints {
		m := ep.Info.JSModule
		if _, done := fns[m]; done {
			continue
		}
		c := &call{app: a, ep: ep, tx: NewTx(emptyState{}), readonly: true, log: opts.Logger}
		names, err := mods.Evaluate(context.Background(), m, c.setup)
		if err != nil {
			return nil, fmt.Errorf("app: module %q: top-level code failed: %w", m, err)
		}
		fns[m] = names
	}
	for _, ep := range a.endpoints {
		if !slices.Contains(fns[ep.Info.JSModule], ep.Info.JSFunction) {
			return nil, fmt.Errorf("app: endpoint %q: export %q of module %q is not a function", ep.Name(), ep.Info.JSFunction, ep.Info.JSModule)
		}
	}
	return a, nil
}

// Bundle returns the bundle the app was loaded from.
func (a *App) Bundle() *Bundle { return a.bundle }

// Endpoints returns the app's endpoints sorted by template, then method.
func (a *App) Endpoints() []*Endpoint { return slices.Clone(a.endpoints) }

// emptyState is the state Load evaluates module top-level code against.
type emptyState struct{}

func (emptyState) GetKV(string, []byte) ([]byte, error)               { return nil, errNotFound }
func (emptyState) ScanKV(string, func(key, value []byte) error) error { return nil }
