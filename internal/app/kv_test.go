package app_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

const kvMain = `
function attempt(f) { try { return String(f()); } catch (e) { return String(e); } }
const k = ccf.strToBuf("k"), v = ccf.strToBuf("v");
export function probe(request) {
  return { body: {
    govRead: attempt(() => ccf.kv["public:ccf.gov.users.certs"].has(k)),
    govWrite: attempt(() => ccf.kv["public:ccf.gov.users.certs"].set(k, v)),
    internalWrite: attempt(() => ccf.kv["public:ccf.internal.x"].delete(k)),
    privateGov: attempt(() => ccf.kv["ccf.gov.secret"].get(k)),
    privateGovSize: attempt(() => ccf.kv["ccf.gov.secret"].size),
    reserved: attempt(() => ccf.kv["public:charter.tree"].get(k)),
    keyType: attempt(() => ccf.kv["m"].get("k")),
    valueType: attempt(() => ccf.kv["m"].set(k, "v")),
    argc: attempt(() => ccf.kv["m"].get()),
    typedKey: attempt(() => { ccf.kv["m"].set(new Uint8Array([1, 2]), new Uint16Array([3])); return ccf.kv["m"].has(new Uint8Array([1, 2]).buffer); }),
    ownWrite: attempt(() => { ccf.kv["m"].set(k, v); return ccf.bufToStr(ccf.kv["m"].get(k)); }),
    strToBufType: attempt(() => ccf.strToBuf(1)),
    jsonUndefined: attempt(() => ccf.jsonCompatibleToBuf(undefined)),
    forEachFn: attempt(() => ccf.kv["m"].forEach(1)),
    claimsSize: attempt(() => ccf.rpc.setClaimsDigest(new ArrayBuffer(31))),
  } };
}
export function readThenWrite(request) {
  const m = ccf.kv["counter"];
  const cur = m.get(k);
  const n = cur === undefined ? 0 : new DataView(cur).getUint32(0, true);
  const b = new ArrayBuffer(4); new DataView(b).setUint32(0, n + 1, true);
  m.set(k, b);
  return { body: n + 1 };
}
`

func TestKVRules(t *testing.T) {
	b := &app.Bundle{
		Metadata: app.Metadata{Endpoints: map[string]map[string]*app.EndpointInfo{
			"/probe": {"post": ep("probe", "readwrite")},
			"/inc":   {"post": ep("readThenWrite", "readwrite")},
		}},
		Modules: []app.Module{{Name: "endpoints/main.js", Module: kvMain}},
	}
	a, err := app.Load(b, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemState()
	s.put("public:ccf.gov.users.certs", []byte("k"), []byte("pem"))
	r := do(t, a, s, "POST", "/probe", "", nil, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var got map[string]string
	if err := json.Unmarshal(r.res.Body, &got); err != nil {
		t.Fatal(err)
	}
	const see = " for more detail."
	const url = "See https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html"
	for k, want := range map[string]string{
		"govRead":        "true",
		"govWrite":       "TypeError: Cannot call .set() on read-only table named public:ccf.gov.users.certs in application execution context. " + url + see,
		"internalWrite":  "TypeError: Cannot call .delete() on read-only table named public:ccf.internal.x in application execution context. " + url + see,
		"privateGov":     "TypeError: Cannot call .get() on inaccessible table named ccf.gov.secret in application execution context. " + url + see,
		"privateGovSize": "TypeError: Cannot call .size() on inaccessible table named ccf.gov.secret in application execution context. " + url + see,
		"reserved":       "TypeError: Cannot call .get() on inaccessible table named public:charter.tree in application execution context. " + url + see,
		"keyType":        "TypeError: Argument must be an ArrayBuffer",
		"valueType":      "TypeError: Arguments must be ArrayBuffers",
		"argc":           "TypeError: Passed 0 arguments, but expected 1",
		"typedKey":       "true",
		"ownWrite":       "v",
		"strToBufType":   "TypeError: Argument must be a string",
		"jsonUndefined":  "TypeError: Argument must be a string",
		"forEachFn":      "TypeError: Argument must be a function",
		"claimsSize":     "TypeError: Argument must be an ArrayBuffer of the right size: 31 != 32",
	} {
		if got[k] != want {
			t.Errorf("%s:\n got %q\nwant %q", k, got[k], want)
		}
	}
	// Typed-array keys and values write their viewed bytes.
	if v, err := s.GetKV("m", []byte{1, 2}); err != nil || string(v) != "\x03\x00" {
		t.Errorf("typed array write: %x %v", v, err)
	}
}

func TestReadSetDetectsConflicts(t *testing.T) {
	b := &app.Bundle{
		Metadata: app.Metadata{Endpoints: map[string]map[string]*app.EndpointInfo{"/inc": {"post": ep("readThenWrite", "readwrite")}}},
		Modules:  []app.Module{{Name: "endpoints/main.js", Module: kvMain}},
	}
	a, err := app.Load(b, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemState()
	e, _, _ := a.Match("POST", "/inc")
	// Two transactions read the same (absent) counter; the first commits,
	// the second must be found in conflict.
	tx1, tx2 := app.NewTx(s), app.NewTx(s)
	r1, err := a.Call(t.Context(), e, &app.Request{Method: "POST"}, tx1)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.Call(t.Context(), e, &app.Request{Method: "POST"}, tx2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.ReadSet.Check(s); err != nil {
		t.Fatal(err)
	}
	s.apply(r1.WriteSet)
	if err := r2.ReadSet.Check(s); !errors.Is(err, app.ErrConflict) {
		t.Fatalf("stale read not detected: %v", err)
	}
	if len(r1.ReadSet.Keys) != 1 || r1.ReadSet.Keys[0].Present {
		t.Fatalf("read set %+v", r1.ReadSet)
	}
}

func TestMapAccess(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readonly bool
		want     app.Access
	}{
		{"accounts", false, app.AccessReadWrite},
		{"public:accounts", false, app.AccessReadWrite},
		{"accounts", true, app.AccessReadOnly},
		{"public:ccf.gov.users.certs", false, app.AccessReadOnly},
		{"public:ccf.internal.tree", false, app.AccessReadOnly},
		{"ccf.gov.users.certs", false, app.AccessIllegal},
		{"ccf.internal.x", true, app.AccessIllegal},
		{"public:charter.tree", false, app.AccessIllegal},
		{"public:scitt.policy", false, app.AccessReadOnly},
		{"public:scitt.issuer_keys", false, app.AccessReadOnly},
		{"public:scitt.configuration", false, app.AccessReadOnly},
		{"public:scitt", false, app.AccessReadWrite},
		{"public:scittish", false, app.AccessReadWrite},
		{"scitt.policy", false, app.AccessIllegal},
		{"charter.nodes", false, app.AccessIllegal},
		{"user_accounts:scitt.x", false, app.AccessReadWrite},
		{"", false, app.AccessIllegal},
		{"a\x00b", false, app.AccessIllegal},
	} {
		if got := app.MapAccess(tc.name, tc.readonly); got != tc.want {
			t.Errorf("MapAccess(%q, %v) = %v, want %v", tc.name, tc.readonly, got, tc.want)
		}
	}
}
