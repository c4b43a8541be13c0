package app

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/charterlog/charter/log"
	"github.com/grafana/sobek"
)

var errNotFound = log.ErrNotFound

// permissionsURL is where CCF's permission errors send the reader.
const permissionsURL = "https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html"

// call is the host side of one request: the Tx, the request and what JS
// asked of the host (apply writes, claims digest). Its methods are the
// bodies of the ccf global's functions.
type call struct {
	app      *App
	ep       *Endpoint
	req      *Request
	tx       *Tx
	readonly bool
	log      *slog.Logger

	applyWrites  *bool // set by ccf.rpc.setApplyWrites; nil: CCF's default (2xx only)
	claimsDigest []byte

	rt *sobek.Runtime
	// Captured before any app code runs, so an app that replaces
	// JSON.stringify or Error cannot change how the host behaves.
	stringify, parse       sobek.Callable
	errorCtor, rangeCtor   *sobek.Object
	syntaxCtor             *sobek.Object
	kvHandles, histHandles map[string]*sobek.Object
	kvProto                *sobek.Object // prototype of map handles, built on first use
	crypto                 *sobek.Object // ccf.crypto, built on first use
	kvByObj                map[*sobek.Object]*kvHandle

	logs []logLine // console lines held back until the call ends
}

func (c *call) throwType(format string, args ...any) {
	panic(c.rt.NewTypeError(fmt.Sprintf(format, args...)))
}

func (c *call) throw(ctor *sobek.Object, format string, args ...any) {
	o, err := c.rt.New(ctor, c.rt.ToValue(fmt.Sprintf(format, args...)))
	if err != nil {
		panic(err)
	}
	panic(o)
}

func (c *call) throwError(format string, args ...any) { c.throw(c.errorCtor, format, args...) }

// argc enforces CCF's exact argument counts.
func (c *call) argc(fc sobek.FunctionCall, n int) {
	if len(fc.Arguments) != n {
		c.throwType("Passed %d arguments, but expected %d", len(fc.Arguments), n)
	}
}

// bytesOf returns the bytes of an ArrayBuffer or a typed-array view
// (aliasing the JS memory: copy before keeping them).
func (c *call) bytesOf(v sobek.Value) ([]byte, bool) {
	o, ok := v.(*sobek.Object)
	if !ok {
		return nil, false
	}
	switch x := o.Export().(type) {
	case sobek.ArrayBuffer:
		return x.Bytes(), true
	case []any, nil:
		return nil, false
	default:
		if t := reflect.TypeOf(x); t.Kind() != reflect.Slice || t.Elem().Kind() == reflect.Interface {
			return nil, false
		}
		var b []byte
		if err := c.rt.ExportTo(o, &b); err != nil {
			return nil, false
		}
		return b, true
	}
}

func (c *call) buffer(b []byte) sobek.Value {
	return c.rt.ToValue(c.rt.NewArrayBuffer(b))
}

func (c *call) fn(f func(sobek.FunctionCall) sobek.Value) sobek.Value { return c.rt.ToValue(f) }

// method sets o[name] to a host function named name, with the given
// length, as a built-in method (writable, configurable, not enumerable).
func (c *call) method(o *sobek.Object, name string, length int, f func(sobek.FunctionCall) sobek.Value) {
	fo := c.fn(f).(*sobek.Object)
	nameFn(c.rt, fo, name, length)
	o.DefineDataProperty(name, fo, sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE)
}

// nameFn gives a host function its JS name and length (sobek names it
// after the Go function).
func nameFn(rt *sobek.Runtime, f *sobek.Object, name string, length int) {
	f.DefineDataProperty("name", rt.ToValue(name), sobek.FLAG_FALSE, sobek.FLAG_TRUE, sobek.FLAG_FALSE)
	f.DefineDataProperty("length", rt.ToValue(length), sobek.FLAG_FALSE, sobek.FLAG_TRUE, sobek.FLAG_FALSE)
}

// hostGlobals are the globals setup assigns.
var hostGlobals = []string{"ccf", "console"}

// setup installs the host globals, before any module code runs.
func (c *call) setup(rt *sobek.Runtime) error {
	c.rt = rt
	c.kvHandles = map[string]*sobek.Object{}
	c.histHandles = map[string]*sobek.Object{}
	json := rt.Get("JSON").ToObject(rt)
	c.stringify, _ = sobek.AssertFunction(json.Get("stringify"))
	c.parse, _ = sobek.AssertFunction(json.Get("parse"))
	c.errorCtor = rt.Get("Error").ToObject(rt)
	c.rangeCtor = rt.Get("RangeError").ToObject(rt)
	c.syntaxCtor = rt.Get("SyntaxError").ToObject(rt)

	// ccf's functions and sub-objects are built on first read (an app uses
	// a few of some fifty): ccf's prototype is a lazyProps, so they read,
	// enumerate (for-in) and can be overridden like own properties, but
	// Object.keys(ccf) lists only kv (and historicalState).
	ccf := rt.CreateObject(rt.NewDynamicObject(&lazyProps{names: ccfNames, make: c.ccfMember}))
	ccf.Set("kv", rt.NewDynamicObject(&kvMaps{c: c, hist: nil}))
	if c.req != nil && c.req.HistoricalState != nil {
		ccf.Set("historicalState", c.historicalState(c.req.HistoricalState))
	}
	if err := rt.GlobalObject().Set("ccf", ccf); err != nil {
		return err
	}
	console := rt.CreateObject(rt.NewDynamicObject(&lazyProps{names: consoleNames, make: c.consoleMember}))
	return rt.GlobalObject().Set("console", console)
}

// lazyProps is a DynamicObject meant as the prototype of a host object:
// each of its properties is built by make on first read and kept.
type lazyProps struct {
	names []string
	make  func(name string) sobek.Value
	vals  []sobek.Value // by index in names
}

func (l *lazyProps) Get(name string) sobek.Value {
	for i, n := range l.names {
		if n == name {
			if l.vals == nil {
				l.vals = make([]sobek.Value, len(l.names))
			}
			if l.vals[i] == nil {
				l.vals[i] = l.make(name)
			}
			return l.vals[i]
		}
	}
	return nil
}
func (l *lazyProps) Has(name string) bool         { return slices.Contains(l.names, name) }
func (l *lazyProps) Set(string, sobek.Value) bool { return false }
func (l *lazyProps) Delete(string) bool           { return false }
func (l *lazyProps) Keys() []string               { return l.names }

// cryptoAliases are the ccf.crypto functions CCF keeps on ccf itself
// (deprecated).
var cryptoAliases = []string{"generateAesKey", "generateRsaKeyPair", "generateEcdsaKeyPair", "wrapKey", "digest", "isValidX509CertBundle", "isValidX509CertChain"}

var ccfNames = append([]string{"strToBuf", "bufToStr", "jsonCompatibleToBuf", "bufToJsonCompatible", "pemToId",
	"crypto", "rpc", "consensus", "historical"}, cryptoAliases...)

// ccfMember builds ccf[name].
func (c *call) ccfMember(name string) sobek.Value {
	rt := c.rt
	fn := func(f func(sobek.FunctionCall) sobek.Value, length int) sobek.Value {
		o := c.fn(f).(*sobek.Object)
		nameFn(rt, o, name, length)
		return o
	}
	switch name {
	case "strToBuf":
		return fn(c.strToBuf, 1)
	case "bufToStr":
		return fn(c.bufToStr, 1)
	case "jsonCompatibleToBuf":
		return fn(c.jsonCompatibleToBuf, 1)
	case "bufToJsonCompatible":
		return fn(c.bufToJsonCompatible, 1)
	case "pemToId":
		return fn(c.pemToID, 1)
	case "crypto":
		return c.cryptoObject()
	case "rpc":
		o := rt.NewObject()
		c.method(o, "setApplyWrites", 1, c.setApplyWrites)
		c.method(o, "setClaimsDigest", 1, c.setClaimsDigest)
		return o
	case "consensus":
		o := rt.NewObject()
		c.method(o, "getLastCommittedTxId", 0, c.getLastCommittedTxID)
		c.method(o, "getStatusForTxId", 2, c.getStatusForTxID)
		c.method(o, "getViewForSeqno", 1, c.getViewForSeqno)
		return o
	case "historical":
		o := rt.NewObject()
		c.method(o, "getStateRange", 4, c.getStateRange)
		c.method(o, "dropCachedStates", 1, c.dropCachedStates)
		return o
	}
	// A deprecated alias: the same function as ccf.crypto's, whatever
	// the app has done to ccf.crypto since.
	return c.cryptoObject().Get(name)
}

var consoleNames = []string{"log", "info", "debug", "warn", "error"}

func (c *call) consoleMember(name string) sobek.Value {
	level := slog.LevelInfo
	switch name {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	o := c.fn(c.console(level)).(*sobek.Object)
	nameFn(c.rt, o, name, 0)
	return o
}

// ---- converters (CCF src/js/extensions/ccf/converters.cpp)

func (c *call) strToBuf(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	s, ok := fc.Argument(0).Export().(string)
	if !ok {
		c.throwType("Argument must be a string")
	}
	return c.buffer([]byte(s))
}

func (c *call) bufToStr(fc sobek.FunctionCall) sobek.Value {
	b := c.bufferArg(fc)
	return c.rt.ToValue(string(b))
}

func (c *call) jsonCompatibleToBuf(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	s, err := c.stringify(sobek.Undefined(), fc.Argument(0))
	if err != nil {
		panic(err)
	}
	str, ok := s.Export().(string)
	if !ok {
		c.throwType("Argument must be a string")
	}
	return c.buffer([]byte(str))
}

func (c *call) bufToJsonCompatible(fc sobek.FunctionCall) sobek.Value {
	b := c.bufferArg(fc)
	v, err := c.parse(sobek.Undefined(), c.rt.ToValue(string(b)))
	if err != nil {
		panic(err)
	}
	return v
}

// pemToId returns the hex SHA-256 of a PEM certificate's DER: a CCF user or
// member id.
func (c *call) pemToID(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	blk, _ := pem.Decode([]byte(fc.Argument(0).String()))
	if blk == nil || blk.Type != "CERTIFICATE" {
		c.throwError("Failed to parse PEM: no certificate")
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		c.throwError("Failed to parse PEM: %v", err)
	}
	sum := sha256.Sum256(blk.Bytes)
	return c.rt.ToValue(hex.EncodeToString(sum[:]))
}

// ---- ccf.rpc

func (c *call) setApplyWrites(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	b, ok := fc.Argument(0).Export().(bool)
	if !ok {
		c.throwType("First argument must be a boolean")
	}
	c.applyWrites = &b
	return sobek.Undefined()
}

func (c *call) setClaimsDigest(fc sobek.FunctionCall) sobek.Value {
	b := c.bufferArg(fc)
	if len(b) != sha256.Size {
		c.throwType("Argument must be an ArrayBuffer of the right size: %d != %d", len(b), sha256.Size)
	}
	c.claimsDigest = append([]byte(nil), b...)
	return sobek.Undefined()
}

// ---- ccf.consensus

func (c *call) consensus() Consensus {
	if c.app.opts.Consensus == nil {
		c.throwError("consensus information is not available on this node")
	}
	return c.app.opts.Consensus
}

// seqnoArg reads a non-negative integer argument.
func (c *call) uintArg(fc sobek.FunctionCall, i int, what string) uint64 {
	f := fc.Argument(i).ToFloat()
	if math.IsNaN(f) || f < 0 || f != math.Trunc(f) || f > 1<<53 {
		c.throwType("%s must be a non-negative integer", what)
	}
	return uint64(f)
}

func (c *call) getLastCommittedTxID(fc sobek.FunctionCall) sobek.Value {
	view, seqno := c.consensus().LastCommitted()
	o := c.rt.NewObject()
	o.Set("view", view)
	o.Set("seqno", seqno)
	return o
}

func (c *call) getStatusForTxID(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 2)
	view, seqno := c.uintArg(fc, 0, "view"), c.uintArg(fc, 1, "seqno")
	return c.rt.ToValue(c.consensus().Status(view, seqno))
}

func (c *call) getViewForSeqno(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	view, ok := c.consensus().ViewOf(c.uintArg(fc, 0, "seqno"))
	if !ok {
		return sobek.Null()
	}
	return c.rt.ToValue(view)
}

// ---- ccf.historical

func (c *call) historical() Historical {
	if c.app.opts.Historical == nil {
		c.throwError("historical state is not available on this node")
	}
	return c.app.opts.Historical
}

// maxHistoricalRange bounds one getStateRange, as CCF bounds its cache
// requests.
const maxHistoricalRange = 1000

func (c *call) getStateRange(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 4)
	handle := c.uintArg(fc, 0, "handle")
	from, to := c.uintArg(fc, 1, "startSeqno"), c.uintArg(fc, 2, "endSeqno")
	expiry := c.uintArg(fc, 3, "secondsUntilExpiry")
	if from == 0 || to < from {
		c.throwType("Invalid range: %d to %d", from, to)
	}
	if to-from >= maxHistoricalRange {
		c.throwType("Invalid range: %d to %d is longer than %d", from, to, maxHistoricalRange)
	}
	states, ready, err := c.historical().StateRange(handle, from, to, time.Duration(min(expiry, 1<<30))*time.Second)
	if err != nil {
		c.throwError("Failed to get historical state range: %v", err)
	}
	if !ready {
		return sobek.Null()
	}
	items := make([]any, len(states))
	for i := range states {
		items[i] = c.historicalState(&states[i])
	}
	return c.rt.NewArray(items...)
}

func (c *call) dropCachedStates(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	ok, err := c.historical().DropCachedStates(c.uintArg(fc, 0, "handle"))
	if err != nil {
		c.throwError("Failed to drop cached states: %v", err)
	}
	return c.rt.ToValue(ok)
}

// historicalState builds CCF's HistoricalState object.
func (c *call) historicalState(h *HistoricalState) *sobek.Object {
	rt := c.rt
	o := rt.NewObject()
	o.Set("transactionId", h.TxID)
	r := rt.NewObject()
	r.Set("signature", h.Receipt.Signature)
	r.Set("cert", h.Receipt.Cert)
	r.Set("node_id", h.Receipt.NodeID)
	proof := make([]any, len(h.Receipt.Proof))
	for i, p := range h.Receipt.Proof {
		e := rt.NewObject()
		if p.Left != "" {
			e.Set("left", p.Left)
		}
		if p.Right != "" {
			e.Set("right", p.Right)
		}
		proof[i] = e
	}
	r.Set("proof", rt.NewArray(proof...))
	lc := rt.NewObject()
	lc.Set("write_set_digest", h.Receipt.LeafComponents.WriteSetDigest)
	if h.Receipt.LeafComponents.CommitEvidence != "" {
		lc.Set("commit_evidence", h.Receipt.LeafComponents.CommitEvidence)
	}
	if h.Receipt.LeafComponents.ClaimsDigest != "" {
		lc.Set("claims_digest", h.Receipt.LeafComponents.ClaimsDigest)
	}
	r.Set("leaf_components", lc)
	o.Set("receipt", r)
	o.Set("kv", rt.NewDynamicObject(&kvMaps{c: c, hist: h.KV}))
	return o
}

// ---- console

func (c *call) console(level slog.Level) func(sobek.FunctionCall) sobek.Value {
	return func(fc sobek.FunctionCall) sobek.Value {
		parts := make([]string, len(fc.Arguments))
		for i, a := range fc.Arguments {
			parts[i] = a.String()
		}
		c.logLine(level, strings.Join(parts, " "))
		return sobek.Undefined()
	}
}

// maxHeldLogLines bounds the console lines a call holds back.
const maxHeldLogLines = 256

// logLine holds back a console line until the call ends, so that the lines
// of an attempt that is discarded (see policy.Invocation.Discard) are
// never logged. A call that logs more than maxHeldLogLines has them
// logged as they come instead.
func (c *call) logLine(level slog.Level, msg string) {
	if len(c.logs) >= maxHeldLogLines {
		c.flushLogs()
		c.log.Log(context.Background(), level, msg, "endpoint", c.ep.Name())
		return
	}
	c.logs = append(c.logs, logLine{level, msg})
}

// flushLogs logs the lines held back.
func (c *call) flushLogs() {
	for _, l := range c.logs {
		c.log.Log(context.Background(), l.level, l.msg, "endpoint", c.ep.Name())
	}
	c.logs = c.logs[:0]
}

type logLine struct {
	level slog.Level
	msg   string
}

// ---- ccf.kv

// kvMaps is ccf.kv (hist nil) or a historical state's kv: any property
// name is a map.
type kvMaps struct {
	c    *call
	hist State // nil: the request's Tx
}

func (m *kvMaps) Get(name string) sobek.Value {
	cache := m.c.kvHandles
	if m.hist != nil {
		cache = m.c.histHandles
	}
	if h := cache[name]; h != nil {
		return h
	}
	h := m.c.kvHandle(name, m.hist)
	cache[name] = h
	return h
}
func (m *kvMaps) Set(string, sobek.Value) bool { return false }
func (m *kvMaps) Has(string) bool              { return true }
func (m *kvMaps) Delete(string) bool           { return false }
func (m *kvMaps) Keys() []string               { return nil }

// kvHandle is the host side of one map handle object.
type kvHandle struct {
	name    string
	hist    State // nil: the request's Tx
	access  Access
	execCtx string
}

// kvHandle builds a map handle object. As in CCF (whose handles are
// instances of one class), the methods live on a prototype shared by all
// the call's handles, built on first use, so a handle costs one object,
// not seven functions; they throw CCF's TypeError where the map's access
// does not allow them, and a TypeError if `this` is not a handle.
func (c *call) kvHandle(name string, hist State) *sobek.Object {
	readonly := c.readonly || hist != nil
	h := &kvHandle{name: name, hist: hist, access: MapAccess(name, readonly), execCtx: "application"}
	if readonly {
		h.execCtx = "read-only application"
	}
	if c.kvProto == nil {
		c.kvProto = c.newKVProto()
		c.kvByObj = make(map[*sobek.Object]*kvHandle, 4)
	}
	o := c.rt.CreateObject(c.kvProto)
	c.kvByObj[o] = h
	return o
}

// kvThis returns the handle a map method was called on, after checking
// that the map's access allows the method (write: set, delete, clear).
func (c *call) kvThis(fc sobek.FunctionCall, method string, write bool) (*kvHandle, *sobek.Object) {
	o, _ := fc.This.(*sobek.Object)
	h := c.kvByObj[o]
	if h == nil {
		c.throwType("%s called on an object that is not a KV map handle", method)
	}
	if h.access == AccessIllegal || (write && h.access != AccessReadWrite) {
		c.throwType("Cannot call .%s() on %s table named %s in %s execution context. See %s for more detail.",
			method, h.access, h.name, h.execCtx, permissionsURL)
	}
	return h, o
}

func (c *call) kvGet(h *kvHandle, key []byte) ([]byte, bool) {
	if h.hist != nil {
		v, err := h.hist.GetKV(h.name, key)
		if errors.Is(err, errNotFound) {
			return nil, false
		}
		if err != nil {
			c.throwError("Failed to read historical map %s: %v", h.name, err)
		}
		return v, true
	}
	v, ok, err := c.tx.get(h.name, key)
	if err != nil {
		c.abort(err)
	}
	return v, ok
}

func (c *call) kvEntries(h *kvHandle) []kvEntry {
	if h.hist != nil {
		var out []kvEntry
		err := h.hist.ScanKV(h.name, func(k, v []byte) error {
			out = append(out, kvEntry{append([]byte(nil), k...), append([]byte(nil), v...)})
			return nil
		})
		if err != nil {
			c.throwError("Failed to read historical map %s: %v", h.name, err)
		}
		return out
	}
	es, err := c.tx.entries(h.name)
	if err != nil {
		c.abort(err)
	}
	return es
}

// bufferArg is the one argument of a call that takes an ArrayBuffer (a
// map's key, a buffer to convert, a claims digest); any other call throws
// CCF's TypeError.
func (c *call) bufferArg(fc sobek.FunctionCall) []byte {
	c.argc(fc, 1)
	b, ok := c.bytesOf(fc.Argument(0))
	if !ok {
		c.throwType("Argument must be an ArrayBuffer")
	}
	return b
}

// newKVProto builds the map handles' prototype: CCF's has, get, set,
// delete, clear, forEach and the size getter.
func (c *call) newKVProto() *sobek.Object {
	rt := c.rt
	p := rt.NewObject()
	c.method(p, "has", 1, func(fc sobek.FunctionCall) sobek.Value {
		h, _ := c.kvThis(fc, "has", false)
		_, ok := c.kvGet(h, c.bufferArg(fc))
		return rt.ToValue(ok)
	})
	c.method(p, "get", 1, func(fc sobek.FunctionCall) sobek.Value {
		h, _ := c.kvThis(fc, "get", false)
		v, ok := c.kvGet(h, c.bufferArg(fc))
		if !ok {
			return sobek.Undefined()
		}
		return c.buffer(append([]byte(nil), v...))
	})
	c.method(p, "set", 2, func(fc sobek.FunctionCall) sobek.Value {
		h, o := c.kvThis(fc, "set", true)
		c.argc(fc, 2)
		k, ok1 := c.bytesOf(fc.Argument(0))
		v, ok2 := c.bytesOf(fc.Argument(1))
		if !ok1 || !ok2 {
			c.throwType("Arguments must be ArrayBuffers")
		}
		if err := c.tx.put(h.name, k, v, false); err != nil {
			c.throw(c.rangeCtor, "%v", err)
		}
		return o
	})
	c.method(p, "delete", 1, func(fc sobek.FunctionCall) sobek.Value {
		h, _ := c.kvThis(fc, "delete", true)
		if err := c.tx.put(h.name, c.bufferArg(fc), nil, true); err != nil {
			c.throw(c.rangeCtor, "%v", err)
		}
		return sobek.Undefined()
	})
	c.method(p, "clear", 0, func(fc sobek.FunctionCall) sobek.Value {
		h, _ := c.kvThis(fc, "clear", true)
		c.argc(fc, 0)
		if err := c.tx.clear(h.name); err != nil {
			if c.tx.fatal != nil {
				c.abort(err)
			}
			c.throw(c.rangeCtor, "%v", err)
		}
		return sobek.Undefined()
	})
	c.method(p, "forEach", 1, func(fc sobek.FunctionCall) sobek.Value {
		h, o := c.kvThis(fc, "forEach", false)
		c.argc(fc, 1)
		cb, ok := sobek.AssertFunction(fc.Argument(0))
		if !ok {
			c.throwType("Argument must be a function")
		}
		for _, e := range c.kvEntries(h) {
			if _, err := cb(sobek.Undefined(), c.buffer(e.value), c.buffer(e.key), o); err != nil {
				panic(err)
			}
		}
		return sobek.Undefined()
	})
	size := c.fn(func(fc sobek.FunctionCall) sobek.Value {
		h, _ := c.kvThis(fc, "size", false)
		return rt.ToValue(len(c.kvEntries(h)))
	}).(*sobek.Object)
	nameFn(rt, size, "get size", 0)
	p.DefineAccessorProperty("size", size, nil, sobek.FLAG_TRUE, sobek.FLAG_TRUE)
	return p
}

// abort stops the call after a State failure: the runtime is interrupted
// (JS cannot catch that) and the Tx keeps the error, which Call returns.
func (c *call) abort(err error) {
	c.rt.Interrupt(err)
	panic(c.rt.NewGoError(err))
}
