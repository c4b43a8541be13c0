package gov

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/recovery"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/grafana/sobek"

	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/policy"
)

// This file serves CCF's `ccf` global to constitutions and ballots, beside
// Charter's own `charter` global (constitution.go), so that a constitution
// written against CCF's documented API runs on Charter. What is served,
// and what each function maps to in Charter, is listed in
// spec/governance.md ("CCF's constitution API").
//
// ccf.kv presents CCF's encodings over Charter's maps: keys and values are
// ArrayBuffers; single-value maps are read and written at CCF's singleton
// key (eight zero bytes); maps where Charter stores text CCF stores as a
// JSON string (the constitution, CA bundles) are converted both ways; and
// the JS app, which CCF spreads over public:ccf.gov.modules and
// public:ccf.gov.endpoints, is staged from those two maps and written as
// Charter's one bundle when apply returns (ccfHost.finish).

// CCF's maps that Charter does not store as such.
const (
	ccfMapModules     = "public:ccf.gov.modules"                  // "/name" → module source
	ccfMapEndpoints   = "public:ccf.gov.endpoints"                // "METHOD /url" → endpoint info JSON
	ccfMapQuickJSCode = "public:ccf.gov.modules_quickjs_bytecode" // CCF's bytecode cache
	// ccfMapSignatures is CCF's record of the latest signature
	// transaction; Charter serves, read-only at the singleton key, its
	// root: the state digest members are issued to acknowledge.
	ccfMapSignatures    = "public:ccf.internal.signatures"
	ccfSingletonKeySize = 8
)

// ccfMapForm says how one of Charter's maps differs from CCF's.
type ccfMapForm struct {
	// singleton is Charter's key for the map's one value, which CCF keeps
	// at eight zero bytes; "" for a map of many keys.
	singleton string
	// jsonString: CCF stores the value as a JSON string, Charter as the
	// text itself.
	jsonString bool
	// text: Charter stores the value as text, not JSON (so a set is not
	// checked to be JSON).
	text bool
}

var ccfMapForms = map[string]ccfMapForm{
	govwire.MapConstitution:     {singleton: govwire.KeyConstitution, jsonString: true},
	govwire.MapServiceInfo:      {singleton: govwire.KeyService},
	govwire.MapJSRuntimeOptions: {singleton: govwire.KeyJSRuntimeOptions},
	govwire.MapCACertBundles:    {jsonString: true},
	govwire.MapMemberCerts:      {text: true},
	govwire.MapMemberEncKeys:    {text: true},
	govwire.MapUserCerts:        {text: true},
	govwire.MapSCITTPolicy:      {text: true},
	govwire.MapIssuerKeys:       {text: true},
	ccfMapQuickJSCode:           {text: true},
}

// hostEnv is what the node gives the host functions of both globals.
type hostEnv struct {
	// validateApp is Config.ValidateApp; nil accepts every bundle.
	validateApp func(bundleJSON []byte) error
	// serviceCertDER is Config.ServiceCert's DER; nil: the identity
	// passed to ccf.node.transitionServiceToOpen is checked to be a
	// certificate but not compared.
	serviceCertDER []byte
	// stateDigest is the digest UpdateStateDigest would issue now (hex),
	// served as the root of public:ccf.internal.signatures; nil: that map
	// reads as empty.
	stateDigest func() (string, error)
}

// ccfHost is the `ccf` global of one call: writable only for apply.
type ccfHost struct {
	o        *overlay
	writable bool
	env      hostEnv
	rt       *sobek.Runtime
	handles  map[string]*sobek.Object
	app      *appStage // nil until the call reaches the JS app's maps
}

// appStage is the JS app in CCF's layout, staged while apply runs.
type appStage struct {
	modules   map[string][]byte // "/name" → source
	endpoints map[string][]byte // "METHOD /url" → info, js_module "/name"
	changed   bool
	// cacheCleared and refreshed record which of CCF's two bytecode
	// paths set_js_app took: clearing the cache is CCF's
	// disable_bytecode_cache.
	cacheCleared, refreshed bool
}

// hostGlobals returns both globals for a call over o, and the ccf host,
// whose finish the caller runs after a successful apply.
func hostGlobals(o *overlay, writable bool, env hostEnv) (map[string]any, *ccfHost) {
	g := host(o, writable, env.validateApp)
	h := &ccfHost{o: o, writable: writable, env: env, handles: map[string]*sobek.Object{}}
	g["ccf"] = policy.HostValue(h.build)
	return g, h
}

// callValidator runs the node's app validator. It is trusted Go code,
// not the constitution: it runs on its own goroutine, so its CPU time
// (parsing and compiling every module of the bundle) is not charged to the
// calling JS, whose thread the sandbox's CPU clock measures. The sandbox's
// wall-clock backstop still bounds the wait.
func callValidator(validateApp func([]byte) error, raw []byte) error {
	if validateApp == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- validateApp(raw) }()
	return <-done
}

// throw raises a JS exception of the given constructor (TypeError,
// RangeError, Error) from a native function. sobek turns a panic with a
// JS value in a native function into that exception, which the
// constitution can catch; the panic does not leave sobek.
func (h *ccfHost) throw(ctor string, format string, args ...any) {
	c, ok := sobek.AssertConstructor(h.rt.GlobalObject().Get(ctor))
	if !ok {
		panic(h.rt.NewTypeError(fmt.Sprintf(format, args...)))
	}
	e, err := c(nil, h.rt.ToValue(fmt.Sprintf(format, args...)))
	if err != nil {
		panic(err)
	}
	panic(e)
}

func (h *ccfHost) buf(b []byte) sobek.Value {
	return h.rt.ToValue(h.rt.NewArrayBuffer(append([]byte(nil), b...)))
}

// bytesOf reads an ArrayBuffer or a typed array / DataView's bytes.
func (h *ccfHost) bytesOf(v sobek.Value) ([]byte, bool) {
	if v == nil || sobek.IsUndefined(v) || sobek.IsNull(v) {
		return nil, false
	}
	switch x := v.Export().(type) {
	case sobek.ArrayBuffer:
		return append([]byte(nil), x.Bytes()...), true
	}
	o, ok := v.(*sobek.Object)
	if !ok {
		return nil, false
	}
	if ab, ok := o.Get("buffer").Export().(sobek.ArrayBuffer); ok && o.Get("byteOffset") != nil {
		off, n := o.Get("byteOffset").ToInteger(), o.Get("byteLength").ToInteger()
		b := ab.Bytes()
		if off < 0 || n < 0 || off+n > int64(len(b)) {
			return nil, false
		}
		return append([]byte(nil), b[off:off+n]...), true
	}
	return nil, false
}

func (h *ccfHost) bufArg(fc sobek.FunctionCall, i int, what string) []byte {
	b, ok := h.bytesOf(fc.Argument(i))
	if !ok {
		h.throw("TypeError", "%s must be an ArrayBuffer", what)
	}
	return b
}

func (h *ccfHost) strArg(fc sobek.FunctionCall, i int, what string) string {
	s, ok := fc.Argument(i).Export().(string)
	if !ok {
		h.throw("TypeError", "%s must be a string", what)
	}
	return s
}

func (h *ccfHost) fn(o *sobek.Object, name string, f func(sobek.FunctionCall) sobek.Value) {
	if err := o.Set(name, h.rt.ToValue(f)); err != nil {
		panic(err)
	}
}

func (h *ccfHost) jsonFn(name string) sobek.Callable {
	j := h.rt.GlobalObject().Get("JSON").(*sobek.Object)
	f, _ := sobek.AssertFunction(j.Get(name))
	return f
}

// build makes the global on rt. A sobek.Object's Set fails only on a
// frozen or exotic object, never on the fresh ones built here.
func (h *ccfHost) build(rt *sobek.Runtime) (sobek.Value, error) {
	h.rt = rt
	ccf := rt.NewObject()
	h.fn(ccf, "strToBuf", func(fc sobek.FunctionCall) sobek.Value {
		return h.buf([]byte(h.strArg(fc, 0, "Argument")))
	})
	h.fn(ccf, "bufToStr", func(fc sobek.FunctionCall) sobek.Value {
		b := h.bufArg(fc, 0, "Argument")
		if !utf8.Valid(b) {
			h.throw("TypeError", "the buffer is not UTF-8")
		}
		return rt.ToValue(string(b))
	})
	h.fn(ccf, "jsonCompatibleToBuf", func(fc sobek.FunctionCall) sobek.Value {
		v, err := h.jsonFn("stringify")(sobek.Undefined(), fc.Argument(0))
		if err != nil {
			panic(err)
		}
		s, ok := v.Export().(string)
		if !ok {
			h.throw("TypeError", "the value is not JSON-compatible")
		}
		return h.buf([]byte(s))
	})
	h.fn(ccf, "bufToJsonCompatible", func(fc sobek.FunctionCall) sobek.Value {
		b := h.bufArg(fc, 0, "Argument")
		v, err := h.jsonFn("parse")(sobek.Undefined(), rt.ToValue(string(b)))
		if err != nil {
			panic(err)
		}
		return v
	})
	h.fn(ccf, "pemToId", func(fc sobek.FunctionCall) sobek.Value {
		c, err := parseCertPEM(h.strArg(fc, 0, "Argument"))
		if err != nil {
			h.throw("Error", "pemToId: %v", err)
		}
		sum := sha256.Sum256(c.Raw)
		return rt.ToValue(hex.EncodeToString(sum[:]))
	})
	crypto := rt.NewObject()
	bundleFn := func(fc sobek.FunctionCall) sobek.Value {
		_, err := certBundleOf(h.strArg(fc, 0, "Argument"))
		return rt.ToValue(err == nil)
	}
	h.fn(crypto, "isValidX509CertBundle", bundleFn)
	h.fn(crypto, "isValidX509CertChain", func(fc sobek.FunctionCall) sobek.Value {
		chain, err1 := certBundleOf(h.strArg(fc, 0, "chain"))
		trusted, err2 := certBundleOf(h.strArg(fc, 1, "trusted"))
		if err1 != nil || err2 != nil {
			return rt.ToValue(false)
		}
		return rt.ToValue(verifyChain(chain, trusted) == nil)
	})
	h.fn(crypto, "digest", func(fc sobek.FunctionCall) sobek.Value {
		if alg := h.strArg(fc, 0, "algorithm"); alg != "SHA-256" {
			h.throw("TypeError", "unsupported digest algorithm %q (SHA-256 is served)", alg)
		}
		sum := sha256.Sum256(h.bufArg(fc, 1, "data"))
		return h.buf(sum[:])
	})
	if err := ccf.Set("crypto", crypto); err != nil {
		return nil, err
	}
	// CCF 1.x and 2.x served these at the top level; constitutions of
	// that time call them there.
	h.fn(ccf, "isValidX509CertBundle", bundleFn)
	if err := ccf.Set("kv", rt.NewDynamicObject(&ccfKV{h: h})); err != nil {
		return nil, err
	}
	node := rt.NewObject()
	h.fn(node, "transitionServiceToOpen", h.transitionServiceToOpen)
	if err := ccf.Set("node", node); err != nil {
		return nil, err
	}
	if err := h.buildCCFDefault(ccf, node); err != nil {
		return nil, err
	}
	// Charter's app runtime compiles modules itself and keeps no bytecode
	// in the ledger: the refresh has nothing to rebuild. It is recorded
	// so that set_js_app's choice between it and clearing the cache
	// becomes the bundle's disable_bytecode_cache.
	h.fn(ccf, "refreshAppBytecodeCache", func(sobek.FunctionCall) sobek.Value {
		h.mustWrite("refreshAppBytecodeCache")
		h.stage().refreshed = true
		return sobek.Undefined()
	})
	return ccf, nil
}

func (h *ccfHost) mustWrite(what string) {
	if !h.writable {
		h.throw("TypeError", "%s is available only in apply", what)
	}
}

// transitionServiceToOpen(previousIdentity?, nextIdentity): CCF's effect
// of transition_service_to_open, Charter's service record set Open. The
// next identity must be the service's certificate when the node gave it.
func (h *ccfHost) transitionServiceToOpen(fc sobek.FunctionCall) sobek.Value {
	h.mustWrite("ccf.node.transitionServiceToOpen")
	if a := fc.Argument(0); !sobek.IsUndefined(a) && !sobek.IsNull(a) {
		if _, err := certBundleOf(string(h.bufArg(fc, 0, "previous service identity"))); err != nil {
			h.throw("Error", "previous service identity: %v", err)
		}
	}
	next, err := certBundleOf(string(h.bufArg(fc, 1, "next service identity")))
	if err != nil {
		h.throw("Error", "next service identity: %v", err)
	}
	if h.env.serviceCertDER != nil && !bytes.Equal(next[0].Raw, h.env.serviceCertDER) {
		h.throw("Error", "the next service identity is not this service's certificate")
	}
	info := map[string]any{}
	if raw, ok, err := h.o.Get(govwire.MapServiceInfo, govwire.KeyService); err != nil {
		panic(h.rt.NewGoError(err))
	} else if ok {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			h.throw("Error", "the service record is not JSON: %v", err)
		}
	}
	info["status"] = govwire.ServiceOpen
	if err := setJSON(h.o, govwire.MapServiceInfo, govwire.KeyService, info); err != nil {
		panic(h.rt.NewGoError(err))
	}
	return sobek.Undefined()
}

// governanceWritable says whether a constitution may write map m, by
// either global: a public map (a private map's values are the app host's
// ciphertext, and a governance write set is in clear) that the nodes do
// not maintain (the ledger refuses a write set that names one), and not
// one of CCF's internal maps (public:ccf.internal.*: the recovery sharing
// and the ledger secret versions, which the primary keeps; as in CCF, a
// constitution reads them and does not write them, so no proposal can
// replace the sharing the members' shares recover). The one exception is
// the rekey requests' counter that trigger_ledger_rekey increments
// (recovery.MapRekey, spec/recovery.md).
func governanceWritable(m string) error {
	if !strings.HasPrefix(m, "public:") {
		return fmt.Errorf("map %s is not public: governance writes only public maps", m)
	}
	if log.IsNodeMaintained(m) {
		return fmt.Errorf("map %s is maintained by the nodes; no governance write set may write it", m)
	}
	if strings.HasPrefix(m, ccfInternalPrefix) && m != recovery.MapRekey {
		return fmt.Errorf("map %s is one of CCF's internal maps, which the service keeps; a constitution reads them only", m)
	}
	return nil
}

// ccfInternalPrefix names CCF's internal maps.
const ccfInternalPrefix = "public:ccf.internal."

// jsonStringOf is s as JSON.stringify writes it: Go's default would
// escape <, > and & as \u003c…, which decodes alike but is not the bytes
// CCF stores.
func jsonStringOf(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// certBundleOf parses one or more PEM certificates and nothing else.
func certBundleOf(text string) ([]*x509.Certificate, error) {
	rest := []byte(text)
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM block is %s, not CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("not a PEM certificate bundle")
	}
	return out, nil
}

// verifyChain checks that chain[0] chains through the rest of chain to
// one of trusted, as CCF's isValidX509CertChain.
func verifyChain(chain, trusted []*x509.Certificate) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range trusted {
		roots.AddCert(c)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// ccfKV is ccf.kv: every property is a map handle.
type ccfKV struct{ h *ccfHost }

func (k *ccfKV) Get(name string) sobek.Value {
	if o := k.h.handles[name]; o != nil {
		return o
	}
	o := k.h.handle(name)
	k.h.handles[name] = o
	return o
}
func (k *ccfKV) Set(string, sobek.Value) bool { return false }
func (k *ccfKV) Has(string) bool              { return true }
func (k *ccfKV) Delete(string) bool           { return false }
func (k *ccfKV) Keys() []string               { return nil }

// handle builds the handle of map m: CCF's KvMap methods has, get, set,
// delete, clear, forEach and size.
func (h *ccfHost) handle(m string) *sobek.Object {
	rt := h.rt
	o := rt.NewObject()
	form := ccfMapForms[m]
	// Governance reaches only public maps: a private map's values are
	// encrypted by the app host, and a governance write set is in clear.
	if !strings.HasPrefix(m, "public:") {
		refuse := func(sobek.FunctionCall) sobek.Value {
			h.throw("TypeError", "map %s is not public: governance reaches only public maps", m)
			return nil
		}
		for _, name := range []string{"has", "get", "set", "delete", "clear", "forEach"} {
			h.fn(o, name, refuse)
		}
		return o
	}
	write := func(method string) {
		h.mustWrite(fmt.Sprintf("%s.%s", m, method))
		if err := governanceWritable(m); err != nil {
			h.throw("TypeError", "%v", err)
		}
		if m == ccfMapSignatures {
			h.throw("TypeError", "map %s is the ledger's own record; it is read-only", m)
		}
		if why, ok := ccfUnservedMaps[m]; ok {
			h.throw("Error", "map %s is %v: %s", m, errNotServed, why)
		}
	}
	h.fn(o, "has", func(fc sobek.FunctionCall) sobek.Value {
		_, ok := h.kvGet(m, form, h.bufArg(fc, 0, "key"))
		return rt.ToValue(ok)
	})
	h.fn(o, "get", func(fc sobek.FunctionCall) sobek.Value {
		v, ok := h.kvGet(m, form, h.bufArg(fc, 0, "key"))
		if !ok {
			return sobek.Undefined()
		}
		return h.buf(v)
	})
	h.fn(o, "set", func(fc sobek.FunctionCall) sobek.Value {
		write("set")
		k := h.bufArg(fc, 0, "key")
		v := h.bufArg(fc, 1, "value")
		h.kvSet(m, form, k, v)
		return o
	})
	h.fn(o, "delete", func(fc sobek.FunctionCall) sobek.Value {
		write("delete")
		h.kvDelete(m, form, h.bufArg(fc, 0, "key"))
		return sobek.Undefined()
	})
	h.fn(o, "clear", func(sobek.FunctionCall) sobek.Value {
		write("clear")
		if m == ccfMapQuickJSCode {
			h.stage().cacheCleared = true
		}
		for _, e := range h.kvEntries(m, form) {
			h.kvDelete(m, form, e[0])
		}
		return sobek.Undefined()
	})
	h.fn(o, "forEach", func(fc sobek.FunctionCall) sobek.Value {
		cb, ok := sobek.AssertFunction(fc.Argument(0))
		if !ok {
			h.throw("TypeError", "forEach's argument must be a function")
		}
		for _, e := range h.kvEntries(m, form) {
			if _, err := cb(sobek.Undefined(), h.buf(e[1]), h.buf(e[0]), o); err != nil {
				panic(err)
			}
		}
		return sobek.Undefined()
	})
	size := rt.ToValue(func(sobek.FunctionCall) sobek.Value {
		return rt.ToValue(len(h.kvEntries(m, form)))
	}).(*sobek.Object)
	if err := o.DefineAccessorProperty("size", size, nil, sobek.FLAG_FALSE, sobek.FLAG_TRUE); err != nil {
		panic(err)
	}
	return o
}

var ccfSingletonKey = make([]byte, ccfSingletonKeySize)

// charterKey maps a CCF key of map m to Charter's; ok is false for a key
// a single-value map cannot hold.
func charterKey(form ccfMapForm, key []byte) (string, bool) {
	if form.singleton != "" {
		return form.singleton, bytes.Equal(key, ccfSingletonKey)
	}
	return string(key), true
}

func (h *ccfHost) goErr(err error) {
	panic(h.rt.NewGoError(err))
}

func (h *ccfHost) kvGet(m string, form ccfMapForm, key []byte) ([]byte, bool) {
	if m == ccfMapSignatures {
		if h.env.stateDigest == nil || !bytes.Equal(key, ccfSingletonKey) {
			return nil, false
		}
		root, err := h.env.stateDigest()
		if err != nil {
			h.goErr(err)
		}
		b, err := json.Marshal(map[string]string{"root": root})
		if err != nil {
			h.goErr(err)
		}
		return b, true
	}
	if m == ccfMapServiceConfig {
		if !bytes.Equal(key, ccfSingletonKey) {
			return nil, false
		}
		b, err := serviceConfig(h.o)
		if err != nil {
			h.goErr(err)
		}
		return b, true
	}
	if isAppMap(m) {
		v, ok := h.stage().mapOf(m)[string(key)]
		return v, ok
	}
	ck, ok := h.mapKey(m, form, key)
	if !ok {
		return nil, false
	}
	v, ok, err := h.o.Get(m, ck)
	if err != nil {
		h.goErr(err)
	}
	if !ok {
		return nil, false
	}
	if form.jsonString {
		return jsonStringOf(v), true
	}
	return []byte(v), true
}

func (h *ccfHost) kvSet(m string, form ccfMapForm, key, value []byte) {
	if isAppMap(m) {
		st := h.stage()
		st.mapOf(m)[string(key)] = value
		st.changed = true
		return
	}
	if m == ccfMapServiceConfig {
		if !bytes.Equal(key, ccfSingletonKey) {
			h.throw("RangeError", "map %s holds one value, at CCF's singleton key (an ArrayBuffer of 8 zero bytes)", m)
		}
		if err := setServiceConfig(h.o, value); err != nil {
			h.throw("Error", "%s: %v", m, err)
		}
		return
	}
	ck, ok := charterKey(form, key)
	if m == govwire.MapNodesInfo {
		if ck, ok = h.mapKey(m, form, key); !ok {
			h.throw("Error", "no node has id %s: a node's record is made when it joins", string(key))
		}
	}
	if !ok {
		h.throw("RangeError", "map %s holds one value, at CCF's singleton key (an ArrayBuffer of 8 zero bytes)", m)
	}
	v := string(value)
	switch {
	case form.jsonString:
		if err := json.Unmarshal(value, &v); err != nil {
			h.throw("TypeError", "the value of map %s must be a JSON string", m)
		}
	case form.text:
	default:
		// Charter's readers parse these maps' values as JSON; one that is
		// not would break them after the write.
		if !json.Valid(value) {
			h.throw("TypeError", "the value of map %s must be JSON", m)
		}
	}
	h.o.Set(m, ck, v)
}

func (h *ccfHost) kvDelete(m string, form ccfMapForm, key []byte) {
	if isAppMap(m) {
		st := h.stage()
		delete(st.mapOf(m), string(key))
		st.changed = true
		return
	}
	if m == ccfMapServiceConfig {
		h.throw("TypeError", "map %s is Charter's recovery threshold, which can be changed but not removed", m)
	}
	ck, ok := h.mapKey(m, form, key)
	if !ok {
		return
	}
	h.o.Delete(m, ck)
}

// kvEntries are map m's [key, value] pairs in CCF's encoding, sorted.
func (h *ccfHost) kvEntries(m string, form ccfMapForm) [][2][]byte {
	var out [][2][]byte
	if m == ccfMapSignatures || m == ccfMapServiceConfig {
		if v, ok := h.kvGet(m, form, ccfSingletonKey); ok {
			out = append(out, [2][]byte{ccfSingletonKey, v})
		}
		return out
	}
	if isAppMap(m) {
		mm := h.stage().mapOf(m)
		for _, k := range sortedKeysOf(mm) {
			out = append(out, [2][]byte{[]byte(k), mm[k]})
		}
		return out
	}
	keys, err := h.o.Keys(m)
	if err != nil {
		h.goErr(err)
	}
	for _, k := range keys {
		ccfKey := []byte(k)
		if form.singleton != "" {
			if k != form.singleton {
				continue
			}
			ccfKey = ccfSingletonKey
		}
		if m == govwire.MapNodesInfo {
			raw, _, err := h.o.Get(m, k)
			if err != nil {
				h.goErr(err)
			}
			ccfKey = []byte(ccfNodeKey(k, raw))
		}
		v, ok := h.kvGet(m, form, ccfKey)
		if ok {
			out = append(out, [2][]byte{ccfKey, v})
		}
	}
	return out
}

func sortedKeysOf(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isAppMap(m string) bool { return m == ccfMapModules || m == ccfMapEndpoints }

func (st *appStage) mapOf(m string) map[string][]byte {
	if m == ccfMapModules {
		return st.modules
	}
	return st.endpoints
}

// bundleJSON is Charter's stored bundle (CCF's bundle.json).
type bundleJSON struct {
	Metadata struct {
		Endpoints map[string]map[string]map[string]any `json:"endpoints"`
	} `json:"metadata"`
	Modules []struct {
		Name   string `json:"name"`
		Module string `json:"module"`
	} `json:"modules"`
}

// stage returns the JS app staged in CCF's layout, loaded from Charter's
// bundle on first use.
func (h *ccfHost) stage() *appStage {
	if h.app != nil {
		return h.app
	}
	st := &appStage{modules: map[string][]byte{}, endpoints: map[string][]byte{}}
	h.app = st
	raw, ok, err := h.o.Get(govwire.MapAppBundle, govwire.KeyAppBundle)
	if err != nil {
		h.goErr(err)
	}
	if !ok {
		return st
	}
	var b bundleJSON
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		h.throw("Error", "the deployed bundle is not JSON: %v", err)
	}
	for _, mod := range b.Modules {
		st.modules["/"+mod.Name] = []byte(mod.Module)
	}
	for url, methods := range b.Metadata.Endpoints {
		for method, info := range methods {
			if s, ok := info["js_module"].(string); ok {
				info["js_module"] = "/" + s
			}
			v, err := json.Marshal(info)
			if err != nil {
				h.goErr(err)
			}
			st.endpoints[strings.ToUpper(method)+" "+url] = v
		}
	}
	return st
}

// finish writes what apply staged in CCF's app maps as Charter's bundle:
// modules named without CCF's leading "/", endpoints keyed by URL then
// lower-case method. Both maps empty removes the app. The node's app
// validator checks the bundle, as charter.validateAppBundle does.
func (h *ccfHost) finish() error {
	st := h.app
	if st == nil || !st.changed {
		return nil
	}
	if len(st.modules) == 0 && len(st.endpoints) == 0 {
		h.o.Delete(govwire.MapAppBundle, govwire.KeyAppBundle)
		h.o.Delete(govwire.MapAppBundle, govwire.KeyDisableBytecodeCache)
		return nil
	}
	type module struct {
		Name   string `json:"name"`
		Module string `json:"module"`
	}
	bundle := struct {
		Metadata struct {
			Endpoints map[string]map[string]json.RawMessage `json:"endpoints"`
		} `json:"metadata"`
		Modules []module `json:"modules"`
	}{}
	bundle.Modules = []module{}
	for _, path := range sortedKeysOf(st.modules) {
		name, ok := strings.CutPrefix(path, "/")
		if !ok || name == "" {
			return fmt.Errorf("%s: module path %q does not begin with /", ccfMapModules, path)
		}
		bundle.Modules = append(bundle.Modules, module{Name: name, Module: string(st.modules[path])})
	}
	bundle.Metadata.Endpoints = map[string]map[string]json.RawMessage{}
	for _, key := range sortedKeysOf(st.endpoints) {
		method, url, ok := strings.Cut(key, " ")
		if !ok || method == "" || !strings.HasPrefix(url, "/") {
			return fmt.Errorf("%s: key %q is not \"METHOD /url\"", ccfMapEndpoints, key)
		}
		var info map[string]any
		if err := json.Unmarshal(st.endpoints[key], &info); err != nil || info == nil {
			return fmt.Errorf("%s: %s: the value is not a JSON object", ccfMapEndpoints, key)
		}
		mod, _ := info["js_module"].(string)
		name, ok := strings.CutPrefix(mod, "/")
		if !ok {
			return fmt.Errorf("%s: %s: js_module %q does not begin with /", ccfMapEndpoints, key, mod)
		}
		info["js_module"] = name
		v, err := json.Marshal(info)
		if err != nil {
			return err
		}
		if bundle.Metadata.Endpoints[url] == nil {
			bundle.Metadata.Endpoints[url] = map[string]json.RawMessage{}
		}
		bundle.Metadata.Endpoints[url][strings.ToLower(method)] = v
	}
	raw, err := json.Marshal(bundle)
	if err != nil {
		return err
	}
	if err := callValidator(h.env.validateApp, raw); err != nil {
		return fmt.Errorf("the JS app written to %s and %s: %v", ccfMapModules, ccfMapEndpoints, err)
	}
	h.o.Set(govwire.MapAppBundle, govwire.KeyAppBundle, string(raw))
	disable := "false"
	if st.cacheCleared && !st.refreshed {
		disable = "true"
	}
	h.o.Set(govwire.MapAppBundle, govwire.KeyDisableBytecodeCache, disable)
	return nil
}
