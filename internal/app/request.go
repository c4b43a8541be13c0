package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/grafana/sobek"

	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/policy"
)

// Request is what the HTTP layer hands to Call; JS sees it as CCF's request
// object (src/js/extensions/ccf/request.cpp).
type Request struct {
	Method   string // "POST"
	Path     string // "/transfer/alice" (no /app prefix)
	Query    string // raw, without "?"
	URL      string // path and "?query" as received, e.g. "/app/transfer/alice?x=1"
	Hostname string
	Route    string            // the matched template, e.g. "/transfer/{account_name}"
	Headers  map[string]string // names are lower-cased for JS
	Params   map[string]string // from Match
	Body     []byte
	// Caller is nil (JS sees null) or the identity the HTTP layer
	// authenticated, shaped as CCF's (e.g. {"policy": "user_cert", "id":
	// hex, "data": ..., "cert": PEM}). It is copied into JS by
	// policy.ToJS: nil, bool, string, numbers, []byte (an ArrayBuffer, e.g.
	// cose.content), slices and string-keyed maps nest.
	Caller any
	// HistoricalState is ccf.historicalState, for endpoints of mode
	// historical (the HTTP layer resolves the x-ms-ccf-transaction-id
	// header to it); nil otherwise.
	HistoricalState *HistoricalState
}

// Result is the outcome of a call that ran to completion: the response the
// handler returned and what the transaction did.
type Result struct {
	StatusCode int
	// Headers as the handler set them, plus content-type when the body
	// type implies one and the handler did not set it.
	Headers map[string]string
	Body    []byte // nil: no body
	// WriteSet holds the writes to commit, or nil if the handler wrote
	// nothing, answered a non-2xx status without ccf.rpc.setApplyWrites(true),
	// or called ccf.rpc.setApplyWrites(false).
	WriteSet *log.WriteSet
	// ReadSet is what the handler observed of the committed state; check
	// it (ReadSet.Check) against the state the writes apply to.
	ReadSet *ReadSet
	// ClaimsDigest is the 32 bytes given to ccf.rpc.setClaimsDigest, or nil.
	ClaimsDigest []byte
	// ReadOnly is true for readonly and historical endpoints.
	ReadOnly bool
}

// ErrException is wrapped by Call's error when the handler threw, hit a
// limit (time, memory, stack) or returned something that is not a valid
// response. The HTTP layer answers 500 with CCF's body
// {"error":{"code":"InternalError","message":"Exception thrown while executing."}};
// the error text (with the JS message and stack) is for the node's log.
var ErrException = errors.New("app: exception thrown while executing")

// Call runs ep's handler for req against tx and returns the response and
// what the transaction did. A fresh interpreter is used: the endpoint
// module's top-level code runs for this call alone.
//
// Errors: ErrException (wrapping the *policy.RunError) for a JS exception,
// a limit, or an invalid response; the State's error if reading the state
// failed (the call is void whatever JS did); ctx's error if it ended first
// (wrapped in a *policy.RunError of kind ErrTimeout).
func (a *App) Call(ctx context.Context, ep *Endpoint, req *Request, tx *Tx) (*Result, error) {
	newCall := func() call {
		return call{app: a, ep: ep, req: req, tx: tx, readonly: ep.ReadOnly(), log: a.opts.Logger}
	}
	c := new(call)
	*c = newCall()
	defer c.flushLogs()
	res := &Result{ReadOnly: c.readonly}
	err := a.mods.Run(ctx, policy.Invocation{
		Module:  ep.Info.JSModule,
		Func:    ep.Info.JSFunction,
		Setup:   c.setup,
		Globals: hostGlobals,
		Args: func(rt *sobek.Runtime) ([]sobek.Value, error) {
			r, err := c.request()
			return []sobek.Value{r}, err
		},
		Result: func(rt *sobek.Runtime, v sobek.Value) error {
			return c.response(v, res)
		},
		// The call is made again on a fresh runtime: forget the first
		// attempt's reads, writes, response and log lines.
		Discard: func() {
			*c = newCall()
			tx.discard()
			*res = Result{ReadOnly: c.readonly}
		},
	})
	if tx.fatal != nil {
		return nil, tx.fatal
	}
	if err != nil {
		var bad *badResponse
		if errors.As(err, &bad) {
			return nil, fmt.Errorf("%w: %s: %s", ErrException, ep.Name(), bad.msg)
		}
		return nil, fmt.Errorf("%w: %w", ErrException, err)
	}
	res.ReadSet = tx.ReadSet()
	// CCF's should_apply_writes: the handler's explicit choice, else
	// commit only a successful (2xx) response's writes.
	apply := res.StatusCode >= 200 && res.StatusCode < 300
	if c.applyWrites != nil {
		apply = *c.applyWrites
	}
	if apply {
		res.WriteSet = tx.WriteSet()
	}
	res.ClaimsDigest = c.claimsDigest
	return res, nil
}

// badResponse is a handler result that is not a valid response object.
type badResponse struct{ msg string }

func (e *badResponse) Error() string { return e.msg }

// request builds CCF's request object.
func (c *call) request() (sobek.Value, error) {
	rt, req := c.rt, c.req
	o := rt.NewObject()
	hdrs := rt.NewObject()
	for _, k := range sortedKeys(req.Headers) {
		hdrs.Set(strings.ToLower(k), req.Headers[k])
	}
	params := rt.NewObject()
	for _, k := range sortedKeys(req.Params) {
		params.Set(k, req.Params[k])
	}
	o.Set("headers", hdrs)
	o.Set("params", params)
	o.Set("query", req.Query)
	o.Set("path", req.Path)
	o.Set("method", req.Method)
	o.Set("hostname", req.Hostname)
	o.Set("route", req.Route)
	o.Set("url", req.URL)
	// CCF's body is an object with text(), json() and arrayBuffer(),
	// built on first read.
	body := rt.CreateObject(rt.NewDynamicObject(&lazyProps{names: bodyNames, make: func(name string) sobek.Value {
		var f func(sobek.FunctionCall) sobek.Value
		switch name {
		case "text":
			f = func(sobek.FunctionCall) sobek.Value { return rt.ToValue(string(req.Body)) }
		case "json":
			f = func(sobek.FunctionCall) sobek.Value {
				v, err := c.parse(sobek.Undefined(), rt.ToValue(string(req.Body)))
				if err != nil {
					panic(err)
				}
				return v
			}
		default: // arrayBuffer
			f = func(sobek.FunctionCall) sobek.Value { return c.buffer(append([]byte(nil), req.Body...)) }
		}
		fo := c.fn(f).(*sobek.Object)
		nameFn(rt, fo, name, 0)
		return fo
	}}))
	o.Set("body", body)
	caller, err := policy.ToJS(c.rt, req.Caller)
	if err != nil {
		return nil, fmt.Errorf("app: request caller: %w", err)
	}
	o.Set("caller", caller)
	return o, nil
}

var bodyNames = []string{"text", "json", "arrayBuffer"}

// response converts the handler's return value as CCF's registry.cpp does.
// It runs under the watchdog: getters and toJSON run.
func (c *call) response(v sobek.Value, res *Result) error {
	rt := c.rt
	o, ok := v.(*sobek.Object)
	if !ok || sobek.IsNull(v) {
		return &badResponse{"the handler must return an object"}
	}
	res.StatusCode = 200
	if sc := o.Get("statusCode"); sc != nil && !sobek.IsUndefined(sc) && !sobek.IsNull(sc) {
		f, isNum := sc.Export().(int64)
		if !isNum {
			fl, isFloat := sc.Export().(float64)
			if !isFloat || fl != math.Trunc(fl) {
				return &badResponse{"statusCode must be an integer"}
			}
			f = int64(fl)
		}
		if f < 100 || f > 999 {
			return &badResponse{fmt.Sprintf("statusCode %d is not an HTTP status", f)}
		}
		res.StatusCode = int(f)
	}
	res.Headers = map[string]string{}
	if h := o.Get("headers"); h != nil && !sobek.IsUndefined(h) && !sobek.IsNull(h) {
		ho, ok := h.(*sobek.Object)
		if !ok {
			return &badResponse{"headers must be an object"}
		}
		for _, k := range ho.Keys() {
			res.Headers[strings.ToLower(k)] = ho.Get(k).String()
		}
	}
	contentType := ""
	if b := o.Get("body"); b != nil && !sobek.IsUndefined(b) {
		if buf, ok := c.bytesOf(b); ok {
			res.Body = append([]byte{}, buf...)
			contentType = "application/octet-stream"
		} else if s, ok := b.Export().(string); ok {
			res.Body = []byte(s)
			contentType = "text/plain"
		} else {
			s, err := c.stringify(sobek.Undefined(), b)
			if err != nil {
				return err
			}
			str, ok := s.Export().(string)
			if !ok {
				return &badResponse{"body cannot be converted to JSON"}
			}
			res.Body = []byte(str)
			contentType = "application/json"
		}
	}
	if _, set := res.Headers["content-type"]; !set && contentType != "" {
		res.Headers["content-type"] = contentType
	}
	_ = rt
	return nil
}
