package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/policy"
)

// ccfAppModules are the @microsoft/ccf-app modules a rollup build copies
// into a bundle, under the path rollup gives them.
var ccfAppModules = []string{"global", "kv", "converters", "crypto", "consensus", "historical", "endpoints", "index", "textcodec"}

func ccfAppBundle(t testing.TB, version, main string, endpoints map[string]map[string]*app.EndpointInfo) *app.Bundle {
	t.Helper()
	b := &app.Bundle{Metadata: app.Metadata{Endpoints: endpoints}}
	for _, m := range ccfAppModules {
		src, err := os.ReadFile(filepath.Join("testdata", "ccf-app-"+version, m+".js"))
		if err != nil {
			t.Fatal(err)
		}
		b.Modules = append(b.Modules, app.Module{Name: "node_modules/@microsoft/ccf-app/" + m + ".js", Module: string(src)})
	}
	b.Modules = append(b.Modules, app.Module{Name: "endpoints/main.js", Module: main})
	return b
}

func ep(fn, mode string) *app.EndpointInfo {
	return &app.EndpointInfo{JSModule: "endpoints/main.js", JSFunction: fn, AuthnPolicies: []app.AuthnPolicy{},
		ForwardingRequired: "never", Mode: mode}
}

const ccfAppMain = `
import * as ccfapp from "../node_modules/@microsoft/ccf-app/index.js";
import { typedKv, typedKvSet } from "../node_modules/@microsoft/ccf-app/kv.js";
import * as conv from "../node_modules/@microsoft/ccf-app/converters.js";
import * as ccfcrypto from "../node_modules/@microsoft/ccf-app/crypto.js";
import { getLastCommittedTxId, getStatusForTxId, getViewForSeqno } from "../node_modules/@microsoft/ccf-app/consensus.js";
import { setClaimsDigest, setApplyWrites } from "../node_modules/@microsoft/ccf-app/endpoints.js";
import { TextEncoder } from "../node_modules/@microsoft/ccf-app/textcodec.js";
import { ccf } from "../node_modules/@microsoft/ccf-app/global.js";

const accounts = typedKv("accounts", conv.string, conv.uint32);

function hex(buf) { return Array.from(new Uint8Array(buf)).map((b) => b.toString(16).padStart(2, "0")).join(""); }

export function write(request) {
  const body = request.body.json();
  accounts.set("alice", body.alice);
  accounts.set("bob", 7);
  const docs = typedKv("public:docs", conv.string, conv.json());
  docs.set("d1", { title: "x", tags: ["a", "b"] });
  const flags = typedKvSet("flags", conv.string);
  flags.add("on");
  const all = typedKv("mixed", conv.int8, conv.bool);
  all.set(-3, true);
  setClaimsDigest(ccfcrypto.digest("SHA-256", ccf.strToBuf("claim")));
  return { statusCode: 201, body: { ok: true } };
}

export function read(request) {
  const out = {};
  accounts.forEach((v, k) => { out[k] = v; });
  const docs = typedKv("public:docs", conv.string, conv.json());
  const txid = getLastCommittedTxId();
  return { body: {
    accounts: out,
    size: accounts.size,
    has: accounts.has("alice"),
    missing: accounts.get("carol") === undefined,
    doc: docs.get("d1"),
    flag: typedKvSet("flags", conv.string).has("on"),
    mixed: typedKv("mixed", conv.int8, conv.bool).get(-3),
    digest: hex(ccfcrypto.digest("SHA-256", ccf.strToBuf("abc"))),
    rawKv: ccfapp.rawKv["accounts"].has(ccf.strToBuf("bob")),
    txid: txid.view + "." + txid.seqno,
    status: getStatusForTxId(2, 5) + "/" + getStatusForTxId(2, 50),
    view: getViewForSeqno(5) + "/" + getViewForSeqno(500),
    encoded: hex(new TextEncoder().encode("hé")),
    uint32Bytes: hex(conv.uint32.encode(60)),
  } };
}

export function discard(request) {
  accounts.set("alice", 1);
  setApplyWrites(false);
  return { body: "discarded" };
}

export function cleanup(request) {
  accounts.delete("bob");
  typedKvSet("flags", conv.string).clear();
  return {};
}

export function cryptoRoundTrips(request) {
  const kp = ccfcrypto.generateEcdsaKeyPair("secp256r1");
  const data = ccf.strToBuf("hello");
  const sig = ccfcrypto.sign({ name: "ECDSA", hash: "SHA-256" }, kp.privateKey, data);
  const ok = ccfcrypto.verifySignature({ name: "ECDSA", hash: "SHA-256" }, kp.publicKey, sig, data);
  const bad = ccfcrypto.verifySignature({ name: "ECDSA", hash: "SHA-256" }, kp.publicKey, sig, ccf.strToBuf("other"));
  const jwk = ccfcrypto.pemToJwk(kp.privateKey, "k1");
  const pem2 = ccfcrypto.jwkToPem(jwk);
  const sig2 = ccfcrypto.sign({ name: "ECDSA", hash: "SHA-256" }, pem2, data);
  const pubJwk = ccfcrypto.pubPemToJwk(kp.publicKey);
  const ok2 = ccfcrypto.verifySignature({ name: "ECDSA", hash: "SHA-256" }, ccfcrypto.pubJwkToPem(pubJwk), sig2, data);
  const aes = ccfcrypto.generateAesKey(256);
  const secret = ccf.strToBuf("a secret key of 24 bytes");
  const wrapped = ccfcrypto.wrapKey(secret, aes, { name: "AES-KWP" });
  const unwrapped = ccf.bufToStr(ccfcrypto.unwrapKey(wrapped, aes, { name: "AES-KWP" }));
  const ed = ccfcrypto.generateEddsaKeyPair("curve25519");
  const edSig = ccfcrypto.sign({ name: "EdDSA" }, ed.privateKey, data);
  const edOk = ccfcrypto.verifySignature({ name: "EdDSA" }, ed.publicKey, edSig, data);
  return { body: { ok, bad, ok2, kid: jwk.kid, kty: jwk.kty, crv: jwk.crv, sigLen: sig.byteLength,
    aesLen: aes.byteLength, unwrapped, edOk, randomThrows: (() => { try { Math.random(); return false; } catch (e) { return true; } })() } };
}
`

func TestCCFAppPackage(t *testing.T) {
	for _, version := range []string{"5.0.23", "6.0.1"} {
		t.Run(version, func(t *testing.T) {
			b := ccfAppBundle(t, version, ccfAppMain, map[string]map[string]*app.EndpointInfo{
				"/write":   {"post": ep("write", "readwrite")},
				"/read":    {"get": ep("read", "readonly")},
				"/discard": {"post": ep("discard", "readwrite")},
				"/cleanup": {"post": ep("cleanup", "readwrite")},
				"/crypto":  {"post": ep("cryptoRoundTrips", "readonly")},
			})
			a, err := app.Load(b, app.Options{Consensus: fakeConsensus{2, 10}})
			if err != nil {
				t.Fatal(err)
			}
			s := newMemState()
			r := do(t, a, s, "POST", "/write", "", []byte(`{"alice":60}`), nil)
			if r.err != nil || r.res.StatusCode != 201 || string(r.res.Body) != `{"ok":true}` || len(r.res.ClaimsDigest) != 32 {
				t.Fatalf("write: %+v %v", r.res, r.err)
			}
			if v, _ := s.GetKV("accounts", []byte("alice")); string(v) != "\x3c\x00\x00\x00" {
				t.Fatalf("uint32 LE: %x", v)
			}
			r = do(t, a, s, "GET", "/read", "", nil, nil)
			if r.err != nil {
				t.Fatal(r.err)
			}
			var got map[string]any
			if err := json.Unmarshal(r.res.Body, &got); err != nil {
				t.Fatal(err)
			}
			wantJSON := `{"accounts":{"alice":60,"bob":7},"digest":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",` +
				`"doc":{"tags":["a","b"],"title":"x"},"encoded":"68c3a9","flag":true,"has":true,"missing":true,"mixed":true,` +
				`"rawKv":true,"size":2,"status":"Committed/Pending","txid":"2.10","uint32Bytes":"3c000000","view":"2/null"}`
			if canon, _ := json.Marshal(got); string(canon) != wantJSON {
				t.Fatalf("read:\n got %s\nwant %s", canon, wantJSON)
			}
			if len(r.res.ReadSet.Scans) != 1 || r.res.ReadSet.Scans[0].Map != "accounts" {
				t.Fatalf("forEach/size must record a scan: %+v", r.res.ReadSet)
			}
			r = do(t, a, s, "POST", "/discard", "", nil, nil)
			if r.err != nil || r.res.WriteSet != nil || string(r.res.Body) != "discarded" || r.res.Headers["content-type"] != "text/plain" {
				t.Fatalf("setApplyWrites(false): %+v %v", r.res, r.err)
			}
			r = do(t, a, s, "POST", "/cleanup", "", nil, nil)
			if r.err != nil || r.res.StatusCode != 200 || r.res.Body != nil {
				t.Fatalf("cleanup: %+v %v", r.res, r.err)
			}
			if _, err := s.GetKV("accounts", []byte("bob")); err == nil {
				t.Fatal("delete did not apply")
			}
			if _, err := s.GetKV("flags", []byte("on")); err == nil {
				t.Fatal("clear did not apply")
			}
			r = do(t, a, s, "POST", "/crypto", "", nil, nil)
			if r.err != nil {
				t.Fatal(r.err)
			}
			const wantCrypto = `{"aesLen":32,"bad":false,"crv":"P-256","edOk":true,"kid":"k1","kty":"EC","ok":true,"ok2":true,"randomThrows":true,"sigLen":64,"unwrapped":"a secret key of 24 bytes"}`
			var c map[string]any
			json.Unmarshal(r.res.Body, &c)
			if canon, _ := json.Marshal(c); string(canon) != wantCrypto {
				t.Fatalf("crypto:\n got %s\nwant %s", canon, wantCrypto)
			}
		})
	}
}

// The Node-only modules of the package are refused at load with an error
// naming the import, not at the first request.
func TestCCFAppNodeOnlyModulesRefused(t *testing.T) {
	src, err := os.ReadFile("testdata/ccf-app-6.0.1/polyfill.js")
	if err != nil {
		t.Fatal(err)
	}
	b := ccfAppBundle(t, "6.0.1", `import "../node_modules/@microsoft/ccf-app/polyfill.js"; export function f() { return {}; }`,
		map[string]map[string]*app.EndpointInfo{"/f": {"get": ep("f", "readonly")}})
	b.Modules = append(b.Modules, app.Module{Name: "node_modules/@microsoft/ccf-app/polyfill.js", Module: string(src)})
	_, err = app.Load(b, app.Options{})
	if !errors.Is(err, policy.ErrSyntax) || !strings.Contains(err.Error(), `import "crypto"`) {
		t.Fatalf("polyfill: %v", err)
	}
}

const isolationMain = `
let counter = 0;
export function count(request) {
  counter++;
  const leaked = typeof globalThis.leaked;
  globalThis.leaked = true;
  Array.prototype.polluted = 1;
  return { body: { counter, leaked, polluted: typeof [].polluted } };
}
export function spin(request) { for (;;) {} }
export function deep(request) { function f(n) { return f(n + 1) + 1; } return f(0); }
export function hog(request) { const a = []; for (;;) { a.push(new Uint8Array(1 << 20).fill(1)); } }
export function throws(request) { throw new Error("boom"); }
export function notObject(request) { return 42; }
export function badStatus(request) { return { statusCode: "200" }; }
`

func isolationApp(t testing.TB, timeoutMs uint64) *app.App {
	t.Helper()
	eps := map[string]map[string]*app.EndpointInfo{}
	for _, f := range []string{"count", "spin", "deep", "hog", "throws", "notObject", "badStatus"} {
		eps["/"+f] = map[string]*app.EndpointInfo{"post": ep(f, "readwrite")}
	}
	b := &app.Bundle{Metadata: app.Metadata{Endpoints: eps}, Modules: []app.Module{{Name: "endpoints/main.js", Module: isolationMain}}}
	a, err := app.Load(b, app.Options{Runtime: app.RuntimeOptions{MaxExecutionTimeMs: timeoutMs, MaxStackBytes: 64 << 10, MaxHeapBytes: 32 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNothingLeaksBetweenCalls(t *testing.T) {
	a := isolationApp(t, 50)
	s := newMemState()
	for i := 0; i < 3; i++ {
		r := do(t, a, s, "POST", "/count", "", nil, nil)
		if r.err != nil || string(r.res.Body) != `{"counter":1,"leaked":"undefined","polluted":"number"}` {
			t.Fatalf("call %d: %s %v (module state, globals and built-ins must be fresh per call)", i, r.res.Body, r.err)
		}
	}
}

func TestFailuresAreContained(t *testing.T) {
	// The memory limit waits for a collection before it fires, so its
	// call gets a time limit it cannot reach first.
	short, long := isolationApp(t, 50), isolationApp(t, 60_000)
	s := newMemState()
	for path, want := range map[string]error{
		"/spin":      policy.ErrTimeout,
		"/deep":      policy.ErrStackOverflow,
		"/hog":       policy.ErrMemory,
		"/throws":    policy.ErrThrown,
		"/notObject": app.ErrException,
		"/badStatus": app.ErrException,
	} {
		a := short
		if path == "/hog" {
			a = long
		}
		r := do(t, a, s, "POST", path, "", nil, nil)
		if !errors.Is(r.err, app.ErrException) || !errors.Is(r.err, want) {
			t.Errorf("%s: %v, want %v", path, r.err, want)
		}
		// The process and the app carry on.
		if r := do(t, a, s, "POST", "/count", "", nil, nil); r.err != nil || r.res.StatusCode != 200 {
			t.Fatalf("after %s: %v", path, r.err)
		}
	}
}

func TestCallStopsOnCancelledContext(t *testing.T) {
	a := isolationApp(t, 50)
	ep, params, _ := a.Match("POST", "/count")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Call(ctx, ep, &app.Request{Method: "POST", Path: "/count", Params: params}, app.NewTx(newMemState()))
	if !errors.Is(err, policy.ErrTimeout) {
		t.Fatalf("cancelled: %v", err)
	}
}
