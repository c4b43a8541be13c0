package policy_test

import (
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/policy"
)

// processCPU is the CPU time the process has used. During a test that runs
// one call at a time it is, within the watchdog's and the collector's
// share, the call's CPU time: what the limit is on.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nativeBombs are native built-ins that, unbounded, run for seconds to
// minutes in one JS instruction (measured on sobek: about 50 ns to 2 µs
// per element over a sparse array of 1e8, a typed array or a string the
// memory limit allows). Each must end within twice the time limit, by the
// limit (ErrTimeout) or, where the work is refused up front, by a
// RangeError (wantRange).
var nativeBombs = []struct {
	name, src string
	wantRange bool
}{
	{"includes", `new Array(1e8).includes(1)`, false},
	{"indexOf", `new Array(1e8).indexOf(1)`, false},
	{"lastIndexOf", `new Array(1e8).lastIndexOf(1)`, false},
	{"join", `new Array(1e8).join(",")`, false},
	{"toString", `String(new Array(1e8))`, false},
	{"sort", `const a = new Array(1e8); a[5] = 1; a.sort()`, false},
	{"toSorted", `new Array(1e8).toSorted()`, true},
	{"with", `new Array(1e8).with(0, 1)`, true},
	{"reverse", `new Array(1e8).reverse()`, false},
	{"copyWithin", `new Array(1e8).copyWithin(1, 0)`, false},
	{"fill", `new Array(1e8).fill(0)`, false},
	{"forEach", `new Array(1e8).forEach(x => x)`, false},
	{"find", `new Array(1e8).find(x => false)`, false},
	{"some", `new Array(1e8).some(x => x)`, false},
	{"map", `new Array(1e8).map(x => x)`, false},
	{"filter", `new Array(1e8).filter(x => x)`, false},
	{"reduce", `new Array(1e8).reduce((a, b) => a, 0)`, false},
	{"slice", `new Array(1e8).slice()`, false},
	{"concat", `[].concat(new Array(1e8))`, false},
	{"flat", `new Array(1e8).flat()`, false},
	{"shift", `const a = new Array(1e8); a.shift()`, false},
	{"splice", `new Array(1e8).splice(0, 1)`, false},
	{"array-like via call", `Array.prototype.includes.call({ length: 1e9 }, 1)`, false},
	{"spread", `[...new Array(1e8)]`, false},
	{"Array.from iterable", `Array.from(new Array(1e8))`, false},
	{"Array.from array-like", `Array.from({ length: 1e8 })`, false},
	{"new Set", `new Set(new Array(1e8))`, false},
	{"typed includes", `new Uint8Array(6e7).includes(1)`, false},
	{"typed join", `new Uint8Array(6e7).join()`, false},
	{"typed sort", `new Float64Array(7e6).sort()`, false},
	{"typed spread", `[...new Uint8Array(6e7)]`, false},
	{"string split", `big().split("")`, true},
	{"string replaceAll", `big().replaceAll("a", "b")`, true},
	// Each exec of the interruptible path may copy the string, which
	// takes long under the race detector: 2e6 characters still take
	// seconds to replace natively.
	{"string regexp replace", `big().slice(0, 2e6).replace(/a/g, "b")`, false},
	{"string match", `big().slice(0, 2e6).match(/a/g)`, false},
	{"string regexp split", `big().slice(0, 2e6).split(/a/)`, false},
	{"string spread", `[...big()]`, false},
	{"apply", `Math.max.apply(null, { length: 1e8 })`, true},
	{"Reflect.apply", `Reflect.apply(Math.max, null, { length: 1e8 })`, true},
}

func TestNativeBuiltinsStopWithinTheLimit(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, b := range nativeBombs {
		t.Run(b.name, func(t *testing.T) {
			// The bomb is in a catch-all try: an interrupt must get
			// through it, and a RangeError is caught and returned.
			// big makes a 32 MiB string by doubling: "a".repeat(3e7)
			// alone takes seconds under the race detector.
			src := `function big() { let s = "a"; while (s.length < 3e7) { s += s; } return s; }
export function f() { try { ` + b.src + `; return "finished"; } catch (e) { return String(e); } }`
			// A bomb refused up front is tested for the refusal: its
			// limit leaves room for building the big string first,
			// which alone can take longer than 200ms on a loaded
			// machine.
			limit := timeout
			if b.wantRange {
				limit = 5 * time.Second
			}
			p := compile(t, one(src), "main.js", policy.Limits{Timeout: limit})
			// A loaded machine (CI runs packages side by side) can
			// stretch one run past the bound; a bomb that is not
			// interrupted runs for seconds every time. So the bound
			// must hold for the best of a few runs, and the outcome
			// for every run.
			best := time.Duration(1<<63 - 1)
			for attempt := 0; attempt < 3 && best > limitSlack*limit; attempt++ {
				// The garbage of the previous bomb is not this
				// one's CPU time.
				runtime.GC()
				cpu, start := processCPU(t), time.Now()
				got, err := call(t, p, "f")
				used, wall := processCPU(t)-cpu, time.Since(start)
				t.Logf("cpu %v, wall %v: %v %v", used, wall, got, err)
				if b.wantRange {
					s, _ := got.(string)
					if err != nil || !strings.HasPrefix(s, "RangeError") {
						t.Fatalf("got %v, %v; want a RangeError", got, err)
					}
				} else if !errors.Is(err, policy.ErrTimeout) && !errors.Is(err, policy.ErrMemory) {
					// Some bombs allocate faster than they loop:
					// the memory limit stops those first, as well.
					t.Fatalf("got %v, %v; want ErrTimeout or ErrMemory", got, err)
				}
				// The limit is on the call's thread's CPU time.
				// The process's CPU time overcounts it by the
				// collector's work on other threads, wall time by
				// waiting for a CPU on a loaded machine: each
				// bounds it from above.
				best = min(best, used, wall)
			}
			if best > limitSlack*limit {
				t.Errorf("at best ran for %v, over %d× the %v limit", best, limitSlack, limit)
			}
		})
	}
}

// TestJSONParseDepthIsBounded: JSON.parse refuses text nested deeper than
// MaxJSONDepth with a SyntaxError the code can catch, before recursing,
// in a bounded time and without the gigabyte the parse would take; text
// at the bound parses, and so does a reviver.
func TestJSONParseDepthIsBounded(t *testing.T) {
	p := compile(t, one(`
export function parse(s) {
	try { return JSON.parse(s).length; } catch (e) { return e.name + ": " + e.message; }
}
export function revive(s) {
	return JSON.stringify(JSON.parse(s, function (k, v) { return typeof v === "number" ? v + 1 : v; }));
}`), "main.js", policy.Limits{})
	bomb := strings.Repeat("[", 3_000_000)
	runtime.GC()
	cpu := processCPU(t)
	got, err := call(t, p, "parse", bomb)
	if err != nil || !strings.HasPrefix(got.(string), "SyntaxError: ") || !strings.Contains(got.(string), "1024") {
		t.Fatalf("parse of 3e6 '[' = %v, %v; want a SyntaxError naming the bound", got, err)
	}
	t.Logf("refused in %v of CPU", processCPU(t)-cpu)
	ok := strings.Repeat("[", policy.MaxJSONDepth) + strings.Repeat("]", policy.MaxJSONDepth)
	if got, err := call(t, p, "parse", ok); err != nil || got != int64(1) {
		t.Fatalf("parse at the bound = %v, %v; want 1", got, err)
	}
	if got, err := call(t, p, "parse", "["+ok+"]"); err != nil || !strings.HasPrefix(got.(string), "SyntaxError") {
		t.Fatalf("parse one past the bound = %v, %v; want a SyntaxError", got, err)
	}
	if got, err := call(t, p, "revive", `{"a":[1,{"b":2}]}`); err != nil || got != `{"a":[2,{"b":3}]}` {
		t.Fatalf("reviver = %v, %v", got, err)
	}
}

// TestRealmKeepsNativeBounds: a realm is built once and reused; its bounded
// built-ins must be the ones every later call sees (they are frozen with
// the rest), and a JSON bomb must not retire it.
func TestRealmKeepsNativeBounds(t *testing.T) {
	const timeout = 100 * time.Millisecond
	m, err := policy.CompileModules("app", map[string]string{"main.js": `
export function ok() { return [3, 1, 2].sort().join(); }
export function bomb() { return new Array(1e8).includes(1); }
export function json() { try { JSON.parse("[".repeat(1e5)); } catch (e) { return e.name; } }
export function patch() { Array.prototype.includes = function () { return "patched"; }; return [].includes(1); }
`}, policy.Limits{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got, discarded, err := realmCall(t, m, "main.js", "ok"); err != nil || got != "1,2,3" || discarded != 0 {
			t.Fatalf("ok %d = %q, %v (discarded %d)", i, got, err, discarded)
		}
		if got, discarded, err := realmCall(t, m, "main.js", "json"); err != nil || got != "SyntaxError" || discarded != 0 {
			t.Fatalf("json %d = %q, %v (discarded %d)", i, got, err, discarded)
		}
		start := time.Now()
		if _, _, err := realmCall(t, m, "main.js", "bomb"); !errors.Is(err, policy.ErrTimeout) {
			t.Fatalf("bomb %d: %v, want ErrTimeout", i, err)
		}
		if d := time.Since(start); d > 2*timeout {
			t.Logf("bomb %d took %v of wall time (limit %v)", i, d, timeout)
		}
	}
	// A realm refuses the patch (frozen built-ins); the fresh runtime
	// the call is then made on accepts it, for that call only.
	if got, _, err := realmCall(t, m, "main.js", "patch"); err != nil || got != "patched" {
		t.Fatalf("patch = %q, %v", got, err)
	}
	if got, _, err := realmCall(t, m, "main.js", "ok"); err != nil || got != "1,2,3" {
		t.Fatalf("ok after patch = %q, %v", got, err)
	}
}
