package app_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/policy"
)

const sandboxMain = `
export function json(request) {
	try { return { body: { n: request.body.json().length } }; }
	catch (e) { return { statusCode: 400, body: e.name + ": " + e.message }; }
}
export function jsonUncaught(request) { return { body: request.body.json() }; }
export function buf(request) {
	try { return { body: { n: ccf.bufToJsonCompatible(request.body.arrayBuffer()).length } }; }
	catch (e) { return { statusCode: 400, body: e.name + ": " + e.message }; }
}
export function parse(request) {
	try { return { body: { n: JSON.parse(request.body.text()).length } }; }
	catch (e) { return { statusCode: 400, body: e.name + ": " + e.message }; }
}
export function includes(request) { return { body: { found: new Array(1e8).includes(1) } }; }
`

func sandboxApp(t testing.TB, timeoutMs uint64) *app.App {
	t.Helper()
	eps := map[string]map[string]*app.EndpointInfo{}
	for _, f := range []string{"json", "jsonUncaught", "buf", "parse", "includes"} {
		eps["/"+f] = map[string]*app.EndpointInfo{"post": ep(f, "readwrite")}
	}
	b := &app.Bundle{Metadata: app.Metadata{Endpoints: eps}, Modules: []app.Module{{Name: "endpoints/main.js", Module: sandboxMain}}}
	a, err := app.Load(b, app.Options{Runtime: app.RuntimeOptions{MaxExecutionTimeMs: timeoutMs}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDeepJSONBodyIsRefused: a request body of millions of "[" (under the
// 8 MiB request limit) used to end the process in the JSON parser's
// recursion. Every way an app parses a body now throws a SyntaxError the
// handler can catch; uncaught, it is the app's exception (500, as CCF
// answers an uncaught exception), and the app carries on.
func TestDeepJSONBodyIsRefused(t *testing.T) {
	a := sandboxApp(t, 1000)
	s := newMemState()
	bomb := []byte(strings.Repeat("[", 8_000_000))
	for _, path := range []string{"/json", "/buf", "/parse"} {
		start := time.Now()
		r := do(t, a, s, "POST", path, "", bomb, nil)
		t.Logf("%s: %v", path, time.Since(start))
		if r.err != nil || r.res.StatusCode != 400 || !strings.HasPrefix(string(r.res.Body), "SyntaxError: ") {
			t.Fatalf("%s: %v %v", path, r.res, r.err)
		}
		ok := strings.Repeat("[", policy.MaxJSONDepth) + strings.Repeat("]", policy.MaxJSONDepth)
		if r := do(t, a, s, "POST", path, "", []byte(ok), nil); r.err != nil || string(r.res.Body) != `{"n":1}` {
			t.Fatalf("%s at the bound: %v", path, r.err)
		}
	}
	r := do(t, a, s, "POST", "/jsonUncaught", "", bomb, nil)
	if !errors.Is(r.err, app.ErrException) || !errors.Is(r.err, policy.ErrThrown) || !strings.Contains(r.err.Error(), "SyntaxError") {
		t.Fatalf("uncaught: %v, want the app's exception with the SyntaxError", r.err)
	}
}

// TestNativeLoopInHandlerIsStopped: new Array(1e8).includes(1) ran for
// seconds in a handler; it now stops at the handler's time limit.
func TestNativeLoopInHandlerIsStopped(t *testing.T) {
	const limitMs = 100
	a := sandboxApp(t, limitMs)
	for i := range 2 { // the second on a reused realm
		start := time.Now()
		r := do(t, a, newMemState(), "POST", "/includes", "", nil, nil)
		d := time.Since(start)
		t.Logf("call %d stopped after %v", i, d)
		if !errors.Is(r.err, policy.ErrTimeout) {
			t.Fatalf("includes: %v, want ErrTimeout", r.err)
		}
		// Twice the limit, plus slack for a loaded machine and the
		// race detector, which slows sobek's native steps several
		// times; unbounded, the loop ran for 5 s (far longer racing).
		if d > 2*limitMs*time.Millisecond+500*time.Millisecond {
			t.Errorf("includes ran %v, limit %d ms", d, limitMs)
		}
	}
}
