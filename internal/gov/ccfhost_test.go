package gov

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/recovery"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/policy"
)

// memState is an applied state in memory.
type memState map[string]map[string]string

func (s memState) GetKV(m string, key []byte) ([]byte, error) {
	v, ok := s[m][string(key)]
	if !ok {
		return nil, ledger.ErrNotFound
	}
	return []byte(v), nil
}

func (s memState) ScanKV(m string, fn func(key, value []byte) error) error {
	keys := make([]string, 0, len(s[m]))
	for k := range s[m] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), []byte(s[m][k])); err != nil {
			return err
		}
	}
	return nil
}

// certPEM makes a certificate signed by parent (self-signed if nil).
func certPEM(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: ca, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), c, k
}

// runCCF runs body as a function over o with the ccf global and returns
// its result, and the host for finish.
func runCCF(t *testing.T, o *overlay, writable bool, env hostEnv, body string) (any, *ccfHost, error) {
	t.Helper()
	p, err := policy.Compile("t", map[string]string{"t.js": "export function f(input) {\n" + body + "\n}"}, "t.js", policy.Limits{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g, h := hostGlobals(o, writable, env)
	out, err := p.CallWith(context.Background(), g, "f", "")
	return out, h, err
}

func mustCCF(t *testing.T, o *overlay, writable bool, body string) any {
	t.Helper()
	out, _, err := runCCF(t, o, writable, hostEnv{}, body)
	if err != nil {
		t.Fatalf("%s\n: %v", body, err)
	}
	return out
}

// The converters, pemToId and ccf.crypto: right answers, and a
// catchable TypeError (or Error) for wrong inputs, as CCF's.
func TestCCFConvertersAndCrypto(t *testing.T) {
	pemText, cert, key := certPEM(t, "root", nil, nil, true)
	leaf, _, _ := certPEM(t, "leaf", cert, key, false)
	other, _, _ := certPEM(t, "other", nil, nil, true)
	sum := sha256.Sum256([]byte("abc"))
	o := newOverlay(memState{})
	for _, c := range []struct {
		name, body string
		want       any
	}{
		{"strToBuf/bufToStr", `return ccf.bufToStr(ccf.strToBuf("héllo"))`, "héllo"},
		{"strToBuf is an ArrayBuffer", `return ccf.strToBuf("ab") instanceof ArrayBuffer && ccf.strToBuf("ab").byteLength === 2`, true},
		{"bufToStr of a typed array", `return ccf.bufToStr(new Uint8Array([104, 105]))`, "hi"},
		{"json round trip", `return ccf.bufToJsonCompatible(ccf.jsonCompatibleToBuf({a: [1, "x", null]})).a[1]`, "x"},
		{"jsonCompatibleToBuf bytes", `return ccf.bufToStr(ccf.jsonCompatibleToBuf("s"))`, `"s"`},
		{"strToBuf(number)", `try { ccf.strToBuf(1) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"bufToStr(string)", `try { ccf.bufToStr("x") } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"bufToStr(invalid UTF-8)", `try { ccf.bufToStr(new Uint8Array([0xff]).buffer) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"jsonCompatibleToBuf(undefined)", `try { ccf.jsonCompatibleToBuf(undefined) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"bufToJsonCompatible(not JSON)", `try { ccf.bufToJsonCompatible(ccf.strToBuf("{")) } catch (e) { return e instanceof SyntaxError } return "no throw"`, true},
		{"bufToJsonCompatible(string)", `try { ccf.bufToJsonCompatible("{}") } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"pemToId", `return ccf.pemToId(` + jsString(pemText) + `)`, govwire.MemberIDOf(cert)},
		{"pemToId(junk)", `try { ccf.pemToId("junk") } catch (e) { return e.message.startsWith("pemToId") } return "no throw"`, true},
		{"pemToId(number)", `try { ccf.pemToId(5) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"isValidX509CertBundle", `return ccf.crypto.isValidX509CertBundle(` + jsString(pemText+leaf) + `)`, true},
		{"isValidX509CertBundle, top level", `return ccf.isValidX509CertBundle(` + jsString(pemText) + `)`, true},
		{"isValidX509CertBundle(junk)", `return ccf.crypto.isValidX509CertBundle("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")`, false},
		{"isValidX509CertBundle(trailing text)", `return ccf.crypto.isValidX509CertBundle(` + jsString(pemText+"junk") + `)`, false},
		{"isValidX509CertBundle(number)", `try { ccf.crypto.isValidX509CertBundle(1) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"isValidX509CertChain", `return ccf.crypto.isValidX509CertChain(` + jsString(leaf) + `, ` + jsString(pemText) + `)`, true},
		{"isValidX509CertChain, wrong root", `return ccf.crypto.isValidX509CertChain(` + jsString(leaf) + `, ` + jsString(other) + `)`, false},
		{"digest", `return ccf.bufToStr(ccf.strToBuf("x")) && Array.from(new Uint8Array(ccf.crypto.digest("SHA-256", ccf.strToBuf("abc")))).map((b) => b.toString(16).padStart(2, "0")).join("")`, hex.EncodeToString(sum[:])},
		{"digest(MD5)", `try { ccf.crypto.digest("MD5", ccf.strToBuf("a")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"digest(string data)", `try { ccf.crypto.digest("SHA-256", "a") } catch (e) { return e instanceof TypeError } return "no throw"`, true},
	} {
		if got := mustCCF(t, o, false, c.body); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// ccf.kv presents Charter's maps in CCF's encodings and writes them back
// in Charter's; what a map cannot hold, and writes outside apply, throw.
func TestCCFKV(t *testing.T) {
	pemText, cert, _ := certPEM(t, "m", nil, nil, false)
	id := govwire.MemberIDOf(cert)
	state := memState{
		govwire.MapMemberCerts:   {id: pemText},
		govwire.MapMemberInfo:    {id: `{"status":"Active"}`},
		govwire.MapConstitution:  {govwire.KeyConstitution: "export function validate() { return 1 < 2 && \"é\" }"},
		govwire.MapServiceInfo:   {govwire.KeyService: `{"status":"Opening"}`},
		govwire.MapCACertBundles: {"b": pemText},
	}
	o := newOverlay(state)
	reads := []struct {
		name, body string
		want       any
	}{
		{"member cert is the PEM", `return ccf.bufToStr(ccf.kv["public:ccf.gov.members.certs"].get(ccf.strToBuf("` + id + `")))`, pemText},
		{"member info is JSON", `return ccf.bufToJsonCompatible(ccf.kv["public:ccf.gov.members.info"].get(ccf.strToBuf("` + id + `"))).status`, "Active"},
		{"has", `const m = ccf.kv["public:ccf.gov.members.info"]; return m.has(ccf.strToBuf("` + id + `")) && !m.has(ccf.strToBuf("x"))`, true},
		{"absent is undefined", `return ccf.kv["public:ccf.gov.members.info"].get(ccf.strToBuf("nobody")) === undefined`, true},
		{"size", `return ccf.kv["public:ccf.gov.members.info"].size`, int64(1)},
		{"forEach", `let s = ""; ccf.kv["public:ccf.gov.members.certs"].forEach((v, k) => { s += ccf.bufToStr(k) }); return s`, id},
		{"constitution at the singleton key, a JSON string", `return ccf.bufToJsonCompatible(ccf.kv["public:ccf.gov.constitution"].get(new ArrayBuffer(8)))`, "export function validate() { return 1 < 2 && \"é\" }"},
		{"constitution at another key", `return ccf.kv["public:ccf.gov.constitution"].get(ccf.strToBuf("constitution")) === undefined`, true},
		{"service info at the singleton key", `return ccf.bufToJsonCompatible(ccf.kv["public:ccf.gov.service.info"].get(new ArrayBuffer(8))).status`, "Opening"},
		{"singleton forEach key", `let n = 0; ccf.kv["public:ccf.gov.service.info"].forEach((v, k) => { n = k.byteLength }); return n`, int64(8)},
		{"the JSON string is JSON.stringify's", `return ccf.bufToStr(ccf.kv["public:ccf.gov.constitution"].get(new ArrayBuffer(8))) === JSON.stringify(` + jsString("export function validate() { return 1 < 2 && \"é\" }") + `)`, true},
		{"CA bundle is a JSON string", `return ccf.bufToJsonCompatible(ccf.kv["public:ccf.gov.tls.ca_cert_bundles"].get(ccf.strToBuf("b")))`, pemText},
		{"get(string)", `try { ccf.kv["public:ccf.gov.members.info"].get("x") } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"forEach(not a function)", `try { ccf.kv["public:ccf.gov.members.info"].forEach(1) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"private map", `try { ccf.kv["records"].get(ccf.strToBuf("x")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"set outside apply", `try { ccf.kv["public:ccf.gov.users.info"].set(ccf.strToBuf("u"), ccf.strToBuf("{}")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"delete outside apply", `try { ccf.kv["public:ccf.gov.users.info"].delete(ccf.strToBuf("u")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"transitionServiceToOpen outside apply", `try { ccf.node.transitionServiceToOpen(undefined, ccf.strToBuf("x")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
	}
	for _, c := range reads {
		if got := mustCCF(t, o, false, c.body); got != c.want {
			t.Errorf("%s: got %#v, want %#v", c.name, got, c.want)
		}
	}
	if len(o.order) != 0 {
		t.Fatalf("reads wrote %v", o.order)
	}

	writes := []struct {
		name, body string
		want       any
	}{
		{"set(value string)", `try { ccf.kv["public:ccf.gov.users.info"].set(ccf.strToBuf("u"), "{}") } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"set(no value)", `try { ccf.kv["public:ccf.gov.members.acks"].set(ccf.strToBuf("u")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"JSON map, not JSON", `try { ccf.kv["public:ccf.gov.users.info"].set(ccf.strToBuf("u"), ccf.strToBuf("{")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"constitution, not a JSON string", `try { ccf.kv["public:ccf.gov.constitution"].set(new ArrayBuffer(8), ccf.strToBuf("export x")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
		{"singleton map, other key", `try { ccf.kv["public:ccf.gov.service.info"].set(ccf.strToBuf("service"), ccf.jsonCompatibleToBuf({})) } catch (e) { return e instanceof RangeError } return "no throw"`, true},
		{"node-maintained map", `try { ccf.kv["public:charter.nodes"].set(ccf.strToBuf("n"), ccf.strToBuf("{}")) } catch (e) { return e instanceof TypeError } return "no throw"`, true},
	}
	for _, c := range writes {
		if got := mustCCF(t, o, true, c.body); got != c.want {
			t.Errorf("%s: got %#v, want %#v", c.name, got, c.want)
		}
	}
	if len(o.order) != 0 {
		t.Fatalf("refused writes wrote %v", o.order)
	}

	mustCCF(t, o, true, `
		ccf.kv["public:ccf.gov.constitution"].set(new ArrayBuffer(8), ccf.jsonCompatibleToBuf("export function resolve() {}"));
		ccf.kv["public:ccf.gov.users.certs"].set(ccf.strToBuf("u1"), ccf.strToBuf("PEM"));
		ccf.kv["public:ccf.gov.users.info"].set(ccf.strToBuf("u1"), ccf.jsonCompatibleToBuf({user_data: 1}));
		ccf.kv["public:ccf.gov.tls.ca_cert_bundles"].set(ccf.strToBuf("c"), ccf.jsonCompatibleToBuf("BUNDLE"));
		ccf.kv["public:ccf.gov.members.info"].delete(ccf.strToBuf("`+id+`"));
		ccf.kv["public:ccf.gov.members.certs"].clear();
		if (ccf.kv["public:ccf.gov.members.certs"].size !== 0) throw new Error("clear left entries");
		return ccf.kv["public:ccf.gov.users.info"].size;`)
	for _, w := range []struct {
		m, k, v string
		gone    bool
	}{
		{govwire.MapConstitution, govwire.KeyConstitution, "export function resolve() {}", false},
		{govwire.MapUserCerts, "u1", "PEM", false},
		{govwire.MapUserInfo, "u1", `{"user_data":1}`, false},
		{govwire.MapCACertBundles, "c", "BUNDLE", false},
		{govwire.MapMemberInfo, id, "", true},
		{govwire.MapMemberCerts, id, "", true},
	} {
		v, ok, _ := o.Get(w.m, w.k)
		if ok == w.gone || v != w.v {
			t.Errorf("%s[%s] = %q (present %v), want %q (present %v)", w.m, w.k, v, ok, w.v, !w.gone)
		}
	}
}

// public:ccf.internal.signatures serves the state digest as its root,
// read-only, so that set_member written as CCF's can record the digest a
// new member acknowledges.
func TestCCFSignaturesRoot(t *testing.T) {
	o := newOverlay(memState{})
	env := hostEnv{stateDigest: func() (string, error) { return "ab12", nil }}
	out, _, err := runCCF(t, o, true, env, `
		const sigs = ccf.kv["public:ccf.internal.signatures"];
		const raw = sigs.get(new ArrayBuffer(8));
		const ack = { state_digest: ccf.bufToJsonCompatible(raw).root };
		ccf.kv["public:ccf.gov.members.acks"].set(ccf.strToBuf("m"), ccf.jsonCompatibleToBuf(ack));
		let refused = false;
		try { sigs.set(new ArrayBuffer(8), ccf.jsonCompatibleToBuf({root: "00"})) } catch (e) { refused = e instanceof TypeError }
		return refused && sigs.size === 1 && sigs.get(ccf.strToBuf("x")) === undefined;`)
	if err != nil || out != true {
		t.Fatalf("%v %v", out, err)
	}
	if v, _, _ := o.Get(govwire.MapMemberAcks, "m"); v != `{"state_digest":"ab12"}` {
		t.Fatalf("ack written from the signatures' root: %s", v)
	}
	if got := mustCCF(t, o, false, `return ccf.kv["public:ccf.internal.signatures"].get(new ArrayBuffer(8)) === undefined`); got != true {
		t.Errorf("without a state digest the map is empty: %v", got)
	}
}

// ccf.node.transitionServiceToOpen opens the service when the next
// identity is the service's certificate, and throws otherwise.
func TestCCFTransitionServiceToOpen(t *testing.T) {
	svcPEM, svc, _ := certPEM(t, "service", nil, nil, true)
	otherPEM, _, _ := certPEM(t, "other", nil, nil, true)
	env := hostEnv{serviceCertDER: svc.Raw}
	for _, c := range []struct{ name, args, want string }{
		{"another certificate", `undefined, ccf.strToBuf(` + jsString(otherPEM) + `)`, "not this service's certificate"},
		{"not a certificate", `undefined, ccf.strToBuf("junk")`, "next service identity"},
		{"a string, not a buffer", jsString(svcPEM), "must be an ArrayBuffer"},
		{"bad previous identity", `ccf.strToBuf("junk"), ccf.strToBuf(` + jsString(svcPEM) + `)`, "previous service identity"},
	} {
		o := newOverlay(memState{govwire.MapServiceInfo: {govwire.KeyService: `{"status":"Opening"}`}})
		_, _, err := runCCF(t, o, true, env, `ccf.node.transitionServiceToOpen(`+c.args+`)`)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		if len(o.order) != 0 {
			t.Errorf("%s: wrote %v", c.name, o.order)
		}
	}
	o := newOverlay(memState{govwire.MapServiceInfo: {govwire.KeyService: `{"status":"Opening"}`}})
	if _, _, err := runCCF(t, o, true, env, `ccf.node.transitionServiceToOpen(undefined, ccf.strToBuf(`+jsString(svcPEM)+`))`); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := o.Get(govwire.MapServiceInfo, govwire.KeyService); v != `{"status":"Open"}` {
		t.Fatalf("service info after the transition: %s", v)
	}
}

// The JS app written in CCF's layout (modules and endpoints maps) becomes
// Charter's bundle when apply returns; the node's validator sees it; both
// maps emptied removes the app.
func TestCCFAppMaps(t *testing.T) {
	existing := `{"metadata":{"endpoints":{"/old":{"get":{"js_module":"old.js","js_function":"f","authn_policies":["no_auth"],"mode":"readonly","forwarding_required":"never"}}}},"modules":[{"name":"old.js","module":"export function f() {}"}]}`
	o := newOverlay(memState{govwire.MapAppBundle: {govwire.KeyAppBundle: existing}})
	var validated []byte
	env := hostEnv{validateApp: func(b []byte) error { validated = b; return nil }}
	out, h, err := runCCF(t, o, true, env, `
		const eps = ccf.kv["public:ccf.gov.endpoints"];
		const old = ccf.bufToJsonCompatible(eps.get(ccf.strToBuf("GET /old")));
		const mods = ccf.kv["public:ccf.gov.modules"];
		const oldSource = ccf.bufToStr(mods.get(ccf.strToBuf("/old.js")));
		mods.clear(); eps.clear();
		mods.set(ccf.strToBuf("/m.js"), ccf.strToBuf("export function g() {}"));
		eps.set(ccf.strToBuf("POST /new"), ccf.jsonCompatibleToBuf({js_module: "/m.js", js_function: "g", authn_policies: ["no_auth"], mode: "readwrite", forwarding_required: "always"}));
		ccf.kv["public:ccf.gov.modules_quickjs_bytecode"].clear();
		return old.js_module + " " + oldSource;`)
	if err != nil {
		t.Fatal(err)
	}
	if out != "/old.js export function f() {}" {
		t.Errorf("the deployed app in CCF's layout: %v", out)
	}
	if err := h.finish(); err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"endpoints":{"/new":{"post":{"authn_policies":["no_auth"],"forwarding_required":"always","js_function":"g","js_module":"m.js","mode":"readwrite"}}}},"modules":[{"name":"m.js","module":"export function g() {}"}]}`
	if v, _, _ := o.Get(govwire.MapAppBundle, govwire.KeyAppBundle); v != want {
		t.Errorf("bundle:\n got %s\nwant %s", v, want)
	}
	if string(validated) != want {
		t.Errorf("the validator saw %s", validated)
	}
	if v, _, _ := o.Get(govwire.MapAppBundle, govwire.KeyDisableBytecodeCache); v != "true" {
		t.Errorf("disable_bytecode_cache after clearing CCF's bytecode map: %s", v)
	}

	// CCF's other path, refreshing the cache, keeps it enabled; outside
	// apply the refresh is refused.
	o = newOverlay(memState{govwire.MapAppBundle: {govwire.KeyAppBundle: existing, govwire.KeyDisableBytecodeCache: "true"}})
	_, h, err = runCCF(t, o, true, hostEnv{}, `ccf.kv["public:ccf.gov.modules"].set(ccf.strToBuf("/old.js"), ccf.strToBuf("export function f() { return 1 }")); ccf.refreshAppBytecodeCache();`)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.finish(); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := o.Get(govwire.MapAppBundle, govwire.KeyDisableBytecodeCache); v != "false" {
		t.Errorf("disable_bytecode_cache after refreshAppBytecodeCache: %s", v)
	}
	if got := mustCCF(t, o, false, `try { ccf.refreshAppBytecodeCache() } catch (e) { return e instanceof TypeError } return "no throw"`); got != true {
		t.Errorf("refreshAppBytecodeCache outside apply: %v", got)
	}

	// The validator's refusal fails the apply; a malformed key too.
	for _, c := range []struct{ name, body, want string }{
		{"refused", `ccf.kv["public:ccf.gov.modules"].set(ccf.strToBuf("/x.js"), ccf.strToBuf("x"))`, "no good"},
		{"module path", `ccf.kv["public:ccf.gov.modules"].set(ccf.strToBuf("x.js"), ccf.strToBuf("x"))`, "does not begin with /"},
		{"endpoint key", `ccf.kv["public:ccf.gov.endpoints"].set(ccf.strToBuf("GET"), ccf.jsonCompatibleToBuf({js_module: "/old.js"}))`, "not \"METHOD /url\""},
	} {
		o := newOverlay(memState{govwire.MapAppBundle: {govwire.KeyAppBundle: existing}})
		_, h, err := runCCF(t, o, true, hostEnv{validateApp: func([]byte) error { return errString("no good") }}, c.body)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.finish(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: finish %v, want %q", c.name, err, c.want)
		}
	}

	o = newOverlay(memState{govwire.MapAppBundle: {govwire.KeyAppBundle: existing, govwire.KeyDisableBytecodeCache: "false"}})
	_, h, err = runCCF(t, o, true, hostEnv{}, `ccf.kv["public:ccf.gov.modules"].clear(); ccf.kv["public:ccf.gov.endpoints"].clear();`)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.finish(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := o.Get(govwire.MapAppBundle, govwire.KeyAppBundle); ok {
		t.Error("the bundle is still there after both maps were cleared")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// charter.kv keeps the same rules of governed maps as ccf.kv.
func TestCharterKVWriteRules(t *testing.T) {
	o := newOverlay(memState{})
	for _, m := range []string{"records", "public:charter.nodes", recovery.MapSharing, recovery.MapShares} {
		got := mustCCF(t, o, true, `try { charter.kv.set(`+jsString(m)+`, "k", "v") } catch (e) { return e.message } return "no throw"`)
		if s, _ := got.(string); !strings.Contains(s, m) {
			t.Errorf("charter.kv.set on %s: %v", m, got)
		}
		got = mustCCF(t, o, true, `try { charter.kv.delete(`+jsString(m)+`, "k") } catch (e) { return e.message } return "no throw"`)
		if s, _ := got.(string); !strings.Contains(s, m) {
			t.Errorf("charter.kv.delete on %s: %v", m, got)
		}
	}
	if len(o.order) != 0 {
		t.Fatalf("refused writes wrote %v", o.order)
	}
	mustCCF(t, o, true, `charter.kv.set("public:ccf.gov.users.info", "u", "{}")`)
	// trigger_ledger_rekey's counter is the one internal map it writes.
	mustCCF(t, o, true, `charter.kv.set(`+jsString(recovery.MapRekey)+`, "requested", "1")`)
	if len(o.order) != 2 {
		t.Fatalf("an allowed write: %v", o.order)
	}
}

// Both globals are served in one call.
func TestCCFBesideCharter(t *testing.T) {
	o := newOverlay(memState{govwire.MapMemberInfo: {"a": `{"status":"Active"}`}})
	got := mustCCF(t, o, false, `return charter.kv.keys("public:ccf.gov.members.info")[0] + ccf.bufToStr(ccf.strToBuf("b"))`)
	if got != "ab" {
		t.Fatalf("got %v", got)
	}
}
