package policy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/grafana/sobek"

	"github.com/charterlog/charter/policy"
)

// realmCall makes a call that may use a realm (Discard is set) and
// returns the function's result as a string and how many times Run
// discarded an attempt.
func realmCall(t *testing.T, m *policy.Modules, module, fn string) (out string, discarded int, err error) {
	t.Helper()
	err = m.Run(context.Background(), policy.Invocation{
		Module: module,
		Func:   fn,
		Setup: func(rt *sobek.Runtime) error {
			return rt.GlobalObject().Set("HOST", "h")
		},
		Globals: []string{"HOST"},
		Result: func(rt *sobek.Runtime, v sobek.Value) error {
			out = v.String()
			return nil
		},
		Discard: func() { out = ""; discarded++ },
	})
	return out, discarded, err
}

// realmBundle is appBundle without its global assignment, which a realm
// refuses (and Run then makes on a fresh runtime).
var realmBundle = map[string]string{
	"endpoints/main.js": `
import { host } from "../lib/host.js";
let counter = 0;
export function count() { counter++; return counter + "/" + host; }
export function boom() { throw new TypeError("boom"); }
export function spin() { for (;;) {} }
export function deep() { return deep() + 1; }
export const notFn = 1;
`,
	"lib/host.js": `export const host = globalThis.HOST;`,
}

func TestRealmRerunsModuleCode(t *testing.T) {
	m, err := policy.CompileModules("app", realmBundle, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		got, discarded, err := realmCall(t, m, "endpoints/main.js", "count")
		if err != nil || got != "1/h" || discarded != 0 {
			t.Fatalf("call %d = %q, %v (discarded %d); want 1/h from the realm: module state must not leak", i, got, err, discarded)
		}
	}
	if m.Fresh() {
		t.Fatal("Modules gave up realms (Fresh) on an app that needs none")
	}
}

func TestRealmErrorsAsFresh(t *testing.T) {
	m, err := policy.CompileModules("app", realmBundle, policy.Limits{Timeout: 20 * time.Millisecond, MaxCallStack: 100})
	if err != nil {
		t.Fatal(err)
	}
	for fn, want := range map[string]struct {
		kind      error
		discarded int // a thrown exception is tried again on a fresh runtime; a limit is not
	}{
		"spin":  {policy.ErrTimeout, 0},
		"deep":  {policy.ErrStackOverflow, 0},
		"boom":  {policy.ErrThrown, 1},
		"notFn": {policy.ErrNoExport, 1},
	} {
		_, discarded, err := realmCall(t, m, "endpoints/main.js", fn)
		if !errors.Is(err, want.kind) || discarded != want.discarded {
			t.Errorf("%s: %v, discarded %d; want %v, discarded %d", fn, err, discarded, want.kind, want.discarded)
		}
		// The realm that failed was dropped; the next call still works.
		if got, discarded, err := realmCall(t, m, "endpoints/main.js", "count"); err != nil || got != "1/h" || discarded != 0 {
			t.Fatalf("after %s: count = %q, %v (discarded %d)", fn, got, err, discarded)
		}
	}
}

// unfrozenJS lists the objects reachable from the global object (other
// than the global itself) and from what built-ins return, through
// properties, accessors and prototypes, that are not frozen: in a realm,
// none may be, since such an object carries state from call to call.
const unfrozenJS = `
export function unfrozen() {
	const gen = function* () {}, cls = class {}, fn = function () {};
	const roots = [gen, gen(), cls, fn,
		[][Symbol.iterator](), new Map().entries(), new Set().values(), ""[Symbol.iterator](),
		/a/g[Symbol.matchAll]("a"), async function () {},
		(function () { "use strict"; return Object.getOwnPropertyDescriptor(arguments, "callee").get; })(),
		new Int8Array(1), new BigUint64Array(1), new DataView(new ArrayBuffer(1)), Promise.resolve(1),
		new WeakMap(), new WeakSet(), Object(Symbol()), Object(1n), new Error("e"), new RangeError("e"),
		() => 1, fn.bind(null), new Proxy({}, {}), Array.from([1]),
	];
	const seen = new Set([globalThis]);
	// Made by this call, not built-ins: the roots and the prototype
	// objects of the functions among them.
	const fresh = new Set([...roots, gen.prototype, cls.prototype, fn.prototype]);
	const stack = [...roots];
	for (const k of Reflect.ownKeys(globalThis)) {
		const d = Object.getOwnPropertyDescriptor(globalThis, k);
		if (k !== "HOST") stack.push(d.value, d.get, d.set);
	}
	const bad = [];
	while (stack.length > 0) {
		const o = stack.pop();
		if ((typeof o !== "object" && typeof o !== "function") || o === null || seen.has(o)) continue;
		seen.add(o);
		if (!fresh.has(o) && !Object.isFrozen(o)) {
			let name = "?";
			try { name = typeof o === "function" ? o.name : (o.constructor && o.constructor.name) + ".prototype"; } catch (e) {}
			if (name === "" || name === "?" || name === ".prototype" || name === "undefined.prototype") name = Object.prototype.toString.call(o) + "{" + Reflect.ownKeys(o).map(String).join(" ") + "}";
			bad.push(name);
		}
		stack.push(Object.getPrototypeOf(o));
		for (const k of Reflect.ownKeys(o)) {
			const d = Object.getOwnPropertyDescriptor(o, k);
			stack.push(d.value, d.get, d.set);
		}
	}
	return bad.length + (bad.length > 0 ? ": " + bad.slice(0, 8).join(", ") : "");
}
`

func TestRealmFreezesEveryBuiltin(t *testing.T) {
	// The walk visits every built-in: under the race detector on a
	// loaded machine it can take longer than the default 100ms limit,
	// which is not what this test is about.
	m, err := policy.CompileModules("app", map[string]string{"main.js": unfrozenJS}, policy.Limits{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got, discarded, err := realmCall(t, m, "main.js", "unfrozen")
	if err != nil || got != "0" || discarded != 0 {
		t.Fatalf("in a realm, unfrozen built-ins = %q, %v (discarded %d); want 0", got, err, discarded)
	}
	// The walk does find them where they are not frozen.
	var fresh string
	err = m.Run(context.Background(), policy.Invocation{Module: "main.js", Func: "unfrozen",
		Result: func(rt *sobek.Runtime, v sobek.Value) error { fresh = v.String(); return nil }})
	if err != nil || fresh == "0" {
		t.Fatalf("on a fresh runtime, unfrozen built-ins = %q, %v; want many", fresh, err)
	}
}

// TestRealmNoLeakAcrossCalls: whatever one call does to the shared world,
// the next call does not see it. Each mutation fails in the realm and then
// succeeds on a fresh runtime, as on CCF; or it succeeds in the realm on
// what the next call's Setup replaces (a host global).
func TestRealmNoLeakAcrossCalls(t *testing.T) {
	for _, tc := range []struct{ mutate, check, want string }{
		{`globalThis.x = 1`, `typeof x`, "undefined"},
		{`globalThis.HOST2 = HOST`, `typeof HOST2`, "undefined"},
		{`globalThis.HOST = 1`, `HOST`, "h"},
		{`Object.defineProperty(globalThis, "y", { value: 1 })`, `typeof y`, "undefined"},
		{`Object.defineProperty(globalThis, Symbol.for("s"), { value: 1, configurable: true })`, `String(globalThis[Symbol.for("s")])`, "undefined"},
		{`Object.defineProperty(globalThis, Symbol.for("t"), { value: 1 })`, `String(globalThis[Symbol.for("t")])`, "undefined"},
		{`Array.prototype.z = 1`, `String([].z)`, "undefined"},
		{`Object.prototype.polluted = 1`, `String({}.polluted)`, "undefined"},
		{`JSON.parse = () => 1`, `String(JSON.parse("2"))`, "2"},
		{`globalThis.JSON = {}`, `typeof JSON.parse`, "function"},
		{`delete globalThis.Math`, `typeof Math`, "object"},
		{`Error.prototype.name = "X"`, `new Error().name`, "Error"},
		{`Object.setPrototypeOf(globalThis, { w: 1 })`, `typeof w`, "undefined"},
		{`Object.preventExtensions(globalThis)`, `typeof HOST`, "string"},
		{`Object.getPrototypeOf([][Symbol.iterator]()).z = 1`, `String(Object.getPrototypeOf([][Symbol.iterator]()).z)`, "undefined"},
		{`Object.getPrototypeOf(Int8Array).z = 1`, `String(Object.getPrototypeOf(Int8Array).z)`, "undefined"},
		{`Uint8Array.prototype.z = 1`, `String(new Uint8Array(1).z)`, "undefined"},
		{`Object.getPrototypeOf(async function () {}).z = 1`, `String(Object.getPrototypeOf(async function () {}).z)`, "undefined"},
		{`Symbol.prototype.description2 = 1`, `String(Symbol().description2)`, "undefined"},
	} {
		t.Run(tc.mutate, func(t *testing.T) {
			src := fmt.Sprintf("export function mutate() { %s; return \"done\"; }\nexport function check() { return %s; }\n", tc.mutate, tc.check)
			m, err := policy.CompileModules("app", map[string]string{"main.js": src}, policy.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got, _, err := realmCall(t, m, "main.js", "mutate"); err != nil || got != "done" {
				t.Fatalf("mutate = %q, %v; want done, as on a fresh runtime", got, err)
			}
			for i := 0; i < 3; i++ {
				got, discarded, err := realmCall(t, m, "main.js", "check")
				if err != nil || got != tc.want || discarded != 0 {
					t.Fatalf("check %d = %q, %v (discarded %d); want %q", i, got, err, discarded, tc.want)
				}
			}
		})
	}
}

// TestRealmAssignmentsThatShadowBuiltins: assigning a property a frozen
// prototype has (the override mistake) works on the app's own objects
// without leaving the realm.
func TestRealmAssignmentsThatShadowBuiltins(t *testing.T) {
	src := `
class MyError extends Error { constructor(m) { super(m); this.name = "MyError"; } }
function Point(x) { this.x = x; }
Point.prototype.toString = function () { return "P" + this.x; };
export function run() {
	const e = new MyError("m");
	const o = {};
	o.toString = () => "o";
	o.valueOf = () => 7;
	o.constructor = "c";
	const f = function () {};
	f.prototype.constructor = "k";
	let refused = "";
	try { Object.prototype.toString = null; } catch (err) { refused = err instanceof TypeError ? "refused" : "other"; }
	return [e.name, e instanceof Error, String(new Point(1)), String(o), o + 1, o.constructor, f.prototype.constructor, refused, Object.prototype.toString.call([])].join();
}`
	m, err := policy.CompileModules("app", map[string]string{"main.js": src}, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, discarded, err := realmCall(t, m, "main.js", "run")
	if want := "MyError,true,P1,o,8,c,k,refused,[object Array]"; err != nil || got != want || discarded != 0 {
		t.Fatalf("run = %q, %v (discarded %d); want %q in the realm", got, err, discarded, want)
	}
}

func TestRealmRescuesSwitchToFresh(t *testing.T) {
	src := `if (!Array.prototype.last) { Array.prototype.last = function () { return this[this.length - 1]; }; }
export function run() { return [1, 2, 3].last(); }`
	m, err := policy.CompileModules("app", map[string]string{"main.js": src}, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		got, discarded, err := realmCall(t, m, "main.js", "run")
		if err != nil || got != "3" {
			t.Fatalf("call %d = %q, %v; want 3, as on CCF", i, got, err)
		}
		if wantDiscard := i < 3; (discarded == 1) != wantDiscard {
			t.Fatalf("call %d discarded %d attempts; want a realm attempt only in the first 3 calls", i, discarded)
		}
	}
	if !m.Fresh() {
		t.Fatal("Fresh() = false after 3 rescued calls")
	}
}
