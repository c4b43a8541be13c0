package app_test

import (
	"encoding/json"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// governedMain tries every write an app could make to each map named in
// the query, and reads it, reporting each outcome.
const governedMain = `
function attempt(f) { try { f(); return "ok"; } catch (e) { return String(e); } }
const k = ccf.strToBuf("policy"), v = ccf.strToBuf("export function apply() { return true; }");
export function tryWrite(request) {
  const out = {};
  for (const name of request.query.split(",")) {
    const m = ccf.kv[name];
    out[name] = {
      set: attempt(() => m.set(k, v)),
      del: attempt(() => m.delete(k)),
      clear: attempt(() => m.clear()),
      get: attempt(() => m.get(k)),
    };
  }
  ccf.kv["public:app.done"].set(k, v);
  return { body: out };
}
`

// TestGovernedMapsAreNotWritable: an app may write none of the governed
// maps (log.GovernedPrefixes); it may read the public ones governance
// writes, and not those the nodes maintain. Nothing it attempted is in its
// write set.
func TestGovernedMapsAreNotWritable(t *testing.T) {
	b := &app.Bundle{
		Metadata: app.Metadata{Endpoints: map[string]map[string]*app.EndpointInfo{
			"/write": {"post": ep("tryWrite", "readwrite")},
		}},
		Modules: []app.Module{{Name: "endpoints/main.js", Module: governedMain}},
	}
	a, err := app.Load(b, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	readOnly := []string{
		"public:scitt.policy", "public:scitt.issuer_keys", "public:scitt.configuration",
		"public:ccf.gov.members.info", "public:ccf.gov.users.certs", "public:ccf.internal.x",
	}
	inaccessible := []string{"public:charter.nodes", "scitt.policy", "charter.x", "ccf.gov.members.info"}
	s := newMemState()
	for _, m := range append(append([]string{}, readOnly...), inaccessible...) {
		s.put(m, []byte("policy"), []byte("governed"))
	}
	query := ""
	for i, m := range append(append([]string{}, readOnly...), inaccessible...) {
		if i > 0 {
			query += ","
		}
		query += m
	}
	r := do(t, a, s, "POST", "/write", query, nil, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var got map[string]map[string]string
	if err := json.Unmarshal(r.res.Body, &got); err != nil {
		t.Fatal(err)
	}
	const tail = " in application execution context. See https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html for more detail."
	for _, m := range readOnly {
		for _, op := range []string{"set", "delete", "clear"} {
			key := op
			if op == "delete" {
				key = "del"
			}
			want := "TypeError: Cannot call ." + op + "() on read-only table named " + m + tail
			if got[m][key] != want {
				t.Errorf("%s %s:\n got %q\nwant %q", m, op, got[m][key], want)
			}
		}
		if got[m]["get"] != "ok" {
			t.Errorf("%s: read refused: %s", m, got[m]["get"])
		}
	}
	for _, m := range inaccessible {
		for _, op := range []string{"set", "get"} {
			want := "TypeError: Cannot call ." + op + "() on inaccessible table named " + m + tail
			if got[m][op] != want {
				t.Errorf("%s %s:\n got %q\nwant %q", m, op, got[m][op], want)
			}
		}
	}
	// The call's one legitimate write is all it wrote; the governed maps
	// hold what they held.
	ws := r.res.WriteSet
	if ws == nil || len(ws.Writes) != 1 || ws.Writes[0].Map != "public:app.done" {
		t.Errorf("write set %+v, want only public:app.done", ws)
	}
	for _, m := range append(append([]string{}, readOnly...), inaccessible...) {
		if v, err := s.GetKV(m, []byte("policy")); err != nil || string(v) != "governed" {
			t.Errorf("%s changed: %q %v", m, v, err)
		}
	}
}
