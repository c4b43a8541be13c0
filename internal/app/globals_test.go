package app_test

import (
	"encoding/json"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// ccf's members, console's and the KV handles' methods are built on first
// use; apps must not be able to tell, beyond Object.keys(ccf).
const globalsMain = `
export function shape(request) {
  const forIn = [];
  for (const k in ccf) { forIn.push(k); }
  const m = ccf.kv["app_map"];
  const out = {
    forIn: forIn.sort().join(","),
    types: ["strToBuf", "crypto", "rpc", "consensus", "historical", "digest", "kv"].map((k) => typeof ccf[k]).join(","),
    stable: ccf.crypto === ccf.crypto && ccf.strToBuf === ccf.strToBuf && ccf.kv.app_map === m,
    alias: ccf.digest === ccf.crypto.digest,
    has: "crypto" in ccf && "log" in console && !("nope" in ccf),
    names: [ccf.strToBuf.name, ccf.crypto.digest.name, ccf.rpc.setClaimsDigest.name, console.log.name, m.get.name].join(","),
    kvProto: Object.getPrototypeOf(m) === Object.getPrototypeOf(ccf.kv.other) && Object.keys(m).length === 0,
    setReturns: m.set(ccf.strToBuf("k"), ccf.strToBuf("v")) === m,
    size: m.size,
  };
  let detached;
  try { const get = m.get; get(ccf.strToBuf("k")); detached = "no error"; } catch (e) { detached = e.name; }
  out.detached = detached;
  ccf.strToBuf = () => "overridden";
  ccf.crypto = { digest: () => "mine" };
  console.log = () => "quiet";
  out.overridden = [ccf.strToBuf("x"), ccf.crypto.digest(), console.log()].join(",");
  return { body: out };
}
export function fresh(request) {
  return { body: { strToBuf: typeof ccf.strToBuf("x"), crypto: typeof ccf.crypto.sign, log: typeof console.log } };
}
`

func TestCCFGlobalsBehaveAsPlainObjects(t *testing.T) {
	eps := map[string]map[string]*app.EndpointInfo{
		"/shape": {"post": ep("shape", "readwrite")},
		"/fresh": {"post": ep("fresh", "readwrite")},
	}
	b := &app.Bundle{Metadata: app.Metadata{Endpoints: eps}, Modules: []app.Module{{Name: "endpoints/main.js", Module: globalsMain}}}
	a, err := app.Load(b, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemState()
	r := do(t, a, s, "POST", "/shape", "", nil, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var got map[string]any
	if err := json.Unmarshal(r.res.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"forIn": "bufToJsonCompatible,bufToStr,consensus,crypto,digest,generateAesKey,generateEcdsaKeyPair,generateRsaKeyPair," +
			"historical,isValidX509CertBundle,isValidX509CertChain,jsonCompatibleToBuf,kv,pemToId,rpc,strToBuf,wrapKey",
		"types":      "function,object,object,object,object,function,object",
		"stable":     true,
		"alias":      true,
		"has":        true,
		"names":      "strToBuf,digest,setClaimsDigest,log,get",
		"kvProto":    true,
		"setReturns": true,
		"size":       float64(1),
		"detached":   "TypeError",
		"overridden": "overridden,mine,quiet",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	// Overrides stay in their call.
	r = do(t, a, s, "POST", "/fresh", "", nil, nil)
	if r.err != nil || string(r.res.Body) != `{"strToBuf":"object","crypto":"function","log":"function"}` {
		t.Fatalf("next call: %s %v", r.res.Body, r.err)
	}
}
