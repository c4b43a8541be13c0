package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// An app that patches a built-in works as on CCF: the call fails in a
// reused realm (whose built-ins are frozen) and is made again on a fresh
// runtime. Nothing of the first attempt remains: its writes, its claims
// digest and its console lines are gone; what the response, the write set
// and the log show is the second attempt alone.
func TestCallRetriedOnFreshRuntimeKeepsOnlyItsOwnEffects(t *testing.T) {
	const main = `
export function patch(request) {
  const n = ccf.kv["tries"].size;
  ccf.kv["tries"].set(ccf.strToBuf("try" + n), ccf.strToBuf("x"));
  ccf.rpc.setClaimsDigest(ccf.crypto.digest("SHA-256", ccf.strToBuf("claim")));
  console.log("attempt");
  Array.prototype.second = function () { return this[1]; };
  return { body: { second: [1, 2].second(), n: n } };
}
export function plain(request) {
  return { body: { patched: typeof [].second } };
}
`
	eps := map[string]map[string]*app.EndpointInfo{
		"/patch": {"post": ep("patch", "readwrite")},
		"/plain": {"post": ep("plain", "readwrite")},
	}
	var logs bytes.Buffer
	b := &app.Bundle{Metadata: app.Metadata{Endpoints: eps}, Modules: []app.Module{{Name: "endpoints/main.js", Module: main}}}
	a, err := app.Load(b, app.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemState()
	r := do(t, a, s, "POST", "/patch", "", nil, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var got map[string]any
	if err := json.Unmarshal(r.res.Body, &got); err != nil || got["second"] != float64(2) || got["n"] != float64(0) {
		t.Fatalf("body %s (%v); want second 2, n 0", r.res.Body, err)
	}
	if ws := r.res.WriteSet; ws == nil || len(ws.Writes) != 1 || string(ws.Writes[0].Key) != "try0" {
		t.Fatalf("write set %+v; want the second attempt's one write, try0", ws)
	}
	if len(r.res.ClaimsDigest) != 32 {
		t.Fatalf("claims digest %x", r.res.ClaimsDigest)
	}
	if n := strings.Count(logs.String(), "msg=attempt"); n != 1 {
		t.Fatalf("%d console lines; want the second attempt's one:\n%s", n, logs.String())
	}
	// A State that records reads itself (the node's) forgets the first
	// attempt's.
	rec := &forgettingState{memState: s}
	ep, params, _ := a.Match("POST", "/patch")
	if _, err := a.Call(context.Background(), ep, &app.Request{Method: "POST", Path: "/patch", Params: params}, app.NewTx(rec)); err != nil || rec.forgot != 1 {
		t.Fatalf("the State's own record of reads was forgotten %d times (%v); want once, for the discarded attempt", rec.forgot, err)
	}
	// The patch stayed in its runtime.
	r = do(t, a, s, "POST", "/plain", "", nil, nil)
	if r.err != nil || !strings.Contains(string(r.res.Body), `"patched":"undefined"`) {
		t.Fatalf("next call: %s, %v", r.res.Body, r.err)
	}
}

// forgettingState is a State that records reads itself, as the node's does.
type forgettingState struct {
	*memState
	forgot int
}

func (s *forgettingState) ForgetReads() { s.forgot++ }
