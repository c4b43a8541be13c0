package app_test

import (
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// CCF's should_apply_writes: a handler's writes commit with a 2xx
// response, not with an error response, unless it chose explicitly with
// ccf.rpc.setApplyWrites.
func TestApplyWritesFollowsStatus(t *testing.T) {
	const src = `
const k = ccf.strToBuf("k");
function write(v) { ccf.kv["m"].set(k, ccf.strToBuf(v)); }
export function ok() { write("ok"); return { statusCode: 201 }; }
export function fail() { write("fail"); return { statusCode: 400, body: "bad" }; }
export function forced() { write("forced"); ccf.rpc.setApplyWrites(true); return { statusCode: 500 }; }
export function dropped() { write("dropped"); ccf.rpc.setApplyWrites(false); return {}; }
`
	b := &app.Bundle{
		Metadata: app.Metadata{Endpoints: map[string]map[string]*app.EndpointInfo{
			"/ok": {"post": ep("ok", "readwrite")}, "/fail": {"post": ep("fail", "readwrite")},
			"/forced": {"post": ep("forced", "readwrite")}, "/dropped": {"post": ep("dropped", "readwrite")},
		}},
		Modules: []app.Module{{Name: "endpoints/main.js", Module: src}},
	}
	a, err := app.Load(b, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for path, wantWrites := range map[string]bool{"/ok": true, "/fail": false, "/forced": true, "/dropped": false} {
		r := do(t, a, newMemState(), "POST", path, "", nil, nil)
		if r.err != nil {
			t.Fatalf("%s: %v", path, r.err)
		}
		if got := r.res.WriteSet != nil; got != wantWrites {
			t.Errorf("%s (status %d): writes kept %v, want %v", path, r.res.StatusCode, got, wantWrites)
		}
	}
}
