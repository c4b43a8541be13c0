package policy_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/policy"
)

// Each probe must fail with exactly this message: what the sandbox promises.
func TestSandboxRemovesAmbientAuthority(t *testing.T) {
	p := compile(t, one(`
export function probe(code) {
	try { return "no error: " + String(PROBES[code]()); }
	catch (e) { return String(e); }
}
const PROBES = {
	dateNow: () => Date.now(),
	newDate: () => new Date(),
	dateCall: () => Date(),
	dateCtorViaProto: () => new (new Date(0).constructor)(),
	random: () => Math.random(),
	eval: () => eval("1"),
	indirectEval: () => globalThis["ev" + "al"]("1"),
	newFunction: () => new Function("return 1")(),
	callFunction: () => Function("return 1")(),
	fnCtor: () => (() => 1).constructor("return 1")(),
	genCtor: () => (function* () {}).constructor("yield 1"),
	asyncCtor: () => (async function () {}).constructor("return 1"),
	require: () => require("fs"),
	dynamicImport: () => import("./main.js"),
};
export function typeofs() {
	return ["require", "process", "console", "setTimeout", "fetch", "XMLHttpRequest", "eval", "globalThis.performance"]
		.map((n) => n + ":" + typeof globalThis[n.replace("globalThis.", "")]).join(",");
}
export function fixedDate() { return new Date(Date.UTC(2024, 0, 2)).toISOString() + " " + Date.parse("2024-01-02T00:00:00Z"); }
export function functionsStillWork() { return (function () {}) instanceof Function && typeof Function.prototype.call === "function"; }
`), "main.js", policy.Limits{})
	noClock := "TypeError: Date: the clock is not available in the policy sandbox"
	noCompile := ": code generation from strings is disabled in the policy sandbox"
	for code, want := range map[string]string{
		"dateNow":          noClock,
		"newDate":          noClock,
		"dateCall":         noClock,
		"dateCtorViaProto": noClock,
		"random":           "TypeError: Math.random: randomness is not available in the policy sandbox",
		"eval":             "ReferenceError: eval is not defined",
		"indirectEval":     "TypeError: Object has no member 'eval'",
		"newFunction":      "TypeError: Function" + noCompile,
		"callFunction":     "TypeError: Function" + noCompile,
		"fnCtor":           "TypeError: Function" + noCompile,
		"genCtor":          "TypeError: GeneratorFunction" + noCompile,
		"asyncCtor":        "TypeError: AsyncFunction" + noCompile,
		"require":          "ReferenceError: require is not defined",
		"dynamicImport":    "no error: [object Promise]", // settles below
	} {
		got, err := call(t, p, "probe", code)
		if err != nil {
			t.Errorf("%s: %v", code, err)
		} else if got != want {
			t.Errorf("%s:\n got %q\nwant %q", code, got, want)
		}
	}
	got, err := call(t, p, "typeofs")
	if want := "require:undefined,process:undefined,console:undefined,setTimeout:undefined,fetch:undefined,XMLHttpRequest:undefined,eval:undefined,globalThis.performance:undefined"; err != nil || got != want {
		t.Errorf("typeofs = %q, %v", got, err)
	}
	if got, err := call(t, p, "fixedDate"); err != nil || got != "2024-01-02T00:00:00.000Z 1704153600000" {
		t.Errorf("deterministic dates must still work: %q, %v", got, err)
	}
	if got, err := call(t, p, "functionsStillWork"); err != nil || got != true {
		t.Errorf("functionsStillWork = %v, %v", got, err)
	}
}

func TestDynamicImportIsRejected(t *testing.T) {
	p := compile(t, one(`
let outcome = "pending";
export function start() { import("./main.js").then(() => { outcome = "loaded"; }, (e) => { outcome = "rejected: " + e; }); }
export function result() { return outcome; }
`), "main.js", policy.Limits{})
	if _, err := call(t, p, "start"); err != nil {
		t.Fatal(err)
	}
	// Promise jobs run before the call returns, on the same runtime, which
	// the pool hands back to this (sequential) caller.
	if got, err := call(t, p, "result"); err != nil || got != "rejected: dynamic modules not enabled in the host program" {
		t.Fatalf("result = %q, %v", got, err)
	}
}

func TestInfiniteLoopIsStopped(t *testing.T) {
	const timeout = 50 * time.Millisecond
	p := compile(t, one(`export function spin() { for (;;) {} } export function ok(x) { return x * 2; }`), "main.js", policy.Limits{Timeout: timeout})
	for range 3 {
		start := time.Now()
		_, err := call(t, p, "spin")
		d := time.Since(start)
		if !errors.Is(err, policy.ErrTimeout) {
			t.Fatalf("spin: %v, want ErrTimeout", err)
		}
		// Only the lower bound is a fact: a call's CPU time never exceeds
		// its wall time. How late it stops depends on the machine's load;
		// the overshoot is reported by BenchmarkTimeoutOvershoot-style
		// measurement in the issue notes, not asserted here.
		if d < timeout {
			t.Errorf("spin stopped after %v, before its %v limit", d, timeout)
		}
		if got, err := call(t, p, "ok", 21); err != nil || got != int64(42) {
			t.Fatalf("call after timeout = %v, %v", got, err)
		}
	}
}

func TestContextCancelStopsCall(t *testing.T) {
	p := compile(t, one(`export function spin() { for (;;) {} }`), "main.js", policy.Limits{Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Call(ctx, "spin")
	if !errors.Is(err, policy.ErrTimeout) || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("err = %v, want ErrTimeout naming the context", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func TestTimeoutDuringModuleInit(t *testing.T) {
	_, err := policy.Compile("b", one(`for (;;) {}`), "main.js", policy.Limits{Timeout: 20 * time.Millisecond})
	if !errors.Is(err, policy.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestDeepRecursion(t *testing.T) {
	p := compile(t, one(`
export function down(n) { return n === 0 ? 0 : 1 + down(n - 1); }
export function forever() { return forever() + 1; }
export function caught() { try { return forever(); } catch (e) { return "caught " + e; } }
`), "main.js", policy.Limits{MaxCallStack: 200})
	if got, err := call(t, p, "down", 150); err != nil || got != int64(150) {
		t.Fatalf("down(150) = %v, %v", got, err)
	}
	for _, fn := range []string{"forever", "caught"} { // the overflow cannot be caught by JS
		if _, err := call(t, p, fn); !errors.Is(err, policy.ErrStackOverflow) {
			t.Fatalf("%s: %v, want ErrStackOverflow", fn, err)
		}
	}
	if _, err := call(t, p, "down", 250); !errors.Is(err, policy.ErrStackOverflow) {
		t.Fatalf("down(250): %v, want ErrStackOverflow", err)
	}
	if got, err := call(t, p, "down", 10); err != nil || got != int64(10) {
		t.Fatalf("after overflow: %v, %v", got, err)
	}
}

func TestMemoryBombsAreStopped(t *testing.T) {
	const limit = 32 << 20
	p := compile(t, one(`
export function fillHuge() { return new Array(1e9).fill(0).length; }
export function growString() { let s = "x"; const keep = []; for (;;) { s = s + s.slice(0, 4096) + "y"; keep.push(s.slice(-65536) + keep.length); } }
export function growArray() { const a = []; for (let i = 0; ; i++) { a.push({ i, s: "item" + i }); } }
export function repeat() { return "ab".repeat(1e9).length; }
export function buffer() { return new ArrayBuffer(1e11).byteLength; }
export function typed() { return new Float64Array(1e9).length; }
export function typedFromArrayLike() { return new Uint8Array({ length: 1e10 }).length; }
export function ok() { return new Uint8Array(1024).length; }
`), "main.js", policy.Limits{Timeout: 5 * time.Second, MaxMemoryBytes: limit})
	for fn, want := range map[string]error{
		"fillHuge":           policy.ErrMemory,
		"growString":         policy.ErrMemory,
		"growArray":          policy.ErrMemory,
		"repeat":             policy.ErrThrown, // refused before allocating: RangeError
		"buffer":             policy.ErrThrown,
		"typed":              policy.ErrThrown,
		"typedFromArrayLike": policy.ErrThrown,
	} {
		start := time.Now()
		_, err := call(t, p, fn)
		// fill on a sparse array of 1e9 now runs in interruptible steps
		// (native.go), each growing the heap a little: on a slow machine
		// or under the race detector the time limit can come first.
		// Either limit stops it; that is what this test is about.
		if fn == "fillHuge" && errors.Is(err, policy.ErrTimeout) {
			want = policy.ErrTimeout
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", fn, err, want)
			continue
		}
		if want == policy.ErrThrown && !strings.Contains(err.Error(), "RangeError") {
			t.Errorf("%s: %v, want a RangeError", fn, err)
		}
		t.Logf("%s stopped after %v: %v", fn, time.Since(start), strings.SplitN(err.Error(), "\n", 2)[0])
		runtime.GC()
		if got, err := call(t, p, "ok"); err != nil || got != int64(1024) {
			t.Fatalf("after %s: %v, %v", fn, got, err)
		}
	}
}

func TestHostGlobalsAreScopedToOneCall(t *testing.T) {
	p := compile(t, one(`
export function useKV(key) { return ccf.kv.get(key) + ":" + ccf.name; }
export function sees() { return typeof ccf; }
export function fail() { return ccf.fail("x"); }
`), "main.js", policy.Limits{})
	store := map[string]string{"a": "1"}
	globals := map[string]any{"ccf": map[string]any{
		"name": "charter",
		"kv":   map[string]any{"get": func(k string) string { return store[k] }},
		"fail": func(string) (string, error) { return "", errors.New("kv unavailable") },
	}}
	got, err := p.CallWith(context.Background(), globals, "useKV", "a")
	if err != nil || got != "1:charter" {
		t.Fatalf("useKV = %v, %v", got, err)
	}
	if _, err := p.CallWith(context.Background(), globals, "fail"); !errors.Is(err, policy.ErrThrown) || !strings.Contains(err.Error(), "kv unavailable") {
		t.Fatalf("host error: %v, want ErrThrown with its message", err)
	}
	// Every pooled runtime has had ccf removed.
	for range 2 * runtime.GOMAXPROCS(0) {
		if got, err := call(t, p, "sees"); err != nil || got != "undefined" {
			t.Fatalf("after CallWith, typeof ccf = %v, %v", got, err)
		}
	}
	if _, err := p.CallWith(context.Background(), map[string]any{"JSON": 1}, "sees"); !errors.Is(err, policy.ErrConvert) {
		t.Fatalf("shadowing a built-in: %v, want ErrConvert", err)
	}
	if got, err := p.CallWith(context.Background(), map[string]any{"ccf": func() { panic("host bug") }}, "useKV", "a"); !errors.Is(err, policy.ErrPanic) && !errors.Is(err, policy.ErrThrown) {
		t.Fatalf("panicking host function: %v, %v", got, err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	p := compile(t, map[string]string{
		"main.js": `import { score } from "./lib.js"; export function f(i, s) { return { i, v: score(s), n: s.length }; }`,
		"lib.js":  `export function score(s) { let h = 0; for (const c of s) { h = (h * 31 + c.charCodeAt(0)) >>> 0; } return h; }`,
	}, "main.js", policy.Limits{Timeout: 10 * time.Second}) // wall-clock: 8 goroutines under -race on few CPUs wait their turn
	score := func(s string) int64 {
		var h uint32
		for _, c := range s {
			h = h*31 + uint32(c)
		}
		return int64(h)
	}
	const goroutines, calls = 8, 1000
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				s := strings.Repeat(string(rune('a'+g)), i%50)
				got, err := p.Call(context.Background(), "f", i, s)
				if err != nil {
					errs <- err
					return
				}
				m := got.(map[string]any)
				if m["i"] != int64(i) || m["v"] != score(s) || m["n"] != int64(len(s)) {
					errs <- errors.New("wrong result")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
