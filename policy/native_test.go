package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/grafana/sobek"
)

// nativeSemantics computes, for inputs longer than the (shrunk) bounds,
// what the bounded built-ins return, in a form that tells NaN, -0, holes
// and undefined apart. The same script runs on a plain sobek runtime,
// whose built-ins are the originals: the results must be equal.
const nativeSemantics = `
const N = 300;
function mk() {
	const a = new Array(N);
	for (let i = 0; i < N; i += 3) { a[i] = i % 7 === 0 ? NaN : (i % 5 === 0 ? -0 : i % 11); }
	a[N - 2] = undefined;
	return a;
}
function show(v) {
	if (typeof v === "number") { return Object.is(v, -0) ? "-0" : String(v); }
	if (typeof v === "bigint") { return v + "n"; }
	if (Array.isArray(v) || ArrayBuffer.isView(v)) {
		let s = "[";
		for (let i = 0; i < v.length; i++) { s += (i in v ? show(v[i]) : "_") + ","; }
		return s + "]";
	}
	if (v !== null && typeof v === "object") { return "{" + Object.keys(v).map(k => k + ":" + show(v[k])).join(",") + "}"; }
	return typeof v + ":" + String(v);
}
const like = { length: N, 5: "x", 7: NaN, 299: "y" };
const f64 = () => { const t = new Float64Array(N); for (let i = 0; i < N; i++) { t[i] = i % 9 === 0 ? NaN : (i % 4 === 0 ? -0 : (i * 7919) % 13 - 6); } return t; };
const s = "ab\u{1F600}c".repeat(N / 4);
const out = {};
const cases = {
	includesNaN: () => mk().includes(NaN),
	includesUndef: () => mk().includes(undefined),
	includesNeg: () => mk().includes(3, -100),
	indexOfNaN: () => mk().indexOf(NaN),
	indexOfZero: () => mk().indexOf(0),
	indexOfFrom: () => mk().indexOf(3, 40),
	lastIndexOf: () => mk().lastIndexOf(3),
	lastIndexOfNeg: () => mk().lastIndexOf(3, -50),
	lastIndexOfZero: () => mk().lastIndexOf(-0),
	join: () => mk().join("|"),
	toString: () => String(mk()),
	toLocaleString: () => mk().toLocaleString(),
	sort: () => { const a = mk(); const r = a.sort(); return [r === a, show(a)]; },
	sortCmp: () => mk().sort((x, y) => y - x),
	sortLike: () => { const o = { length: N, 3: "c", 1: "a", 250: "b", 9: undefined }; Array.prototype.sort.call(o); return o; },
	reverse: () => { const a = mk(); return [a.reverse() === a, show(a)]; },
	copyWithin: () => { const a = mk(); return [a.copyWithin(1, 10, 200) === a, show(a)]; },
	fill: () => mk().fill(7, -20, -5),
	forEach: () => { let n = 0, seen = null; const a = mk(); a.forEach((x, i, arr) => { n += i; }); return n; },
	every: () => mk().every(x => x === undefined || typeof x === "number"),
	some: () => mk().some(x => x === 10),
	find: () => mk().find(x => x === 9),
	findIndex: () => mk().findIndex(x => x === undefined),
	findLast: () => mk().findLast(x => x === 2),
	findLastIndex: () => mk().findLastIndex(x => x !== x),
	map: () => mk().map(x => x * 2),
	filter: () => mk().filter(x => x > 3),
	reduce: () => mk().reduce((a, b) => a + "," + show(b), ""),
	reduceRight: () => mk().reduceRight((a, b) => a + "," + show(b), ""),
	slice: () => mk().slice(-40, -3),
	concat: () => [1].concat(mk(), [2]),
	flat: () => [mk(), [mk()]].flat(2).length,
	flatMap: () => mk().flatMap(x => [x, x]),
	splice: () => { const a = mk(); const r = a.splice(5, 100, "p", "q"); return [show(r), show(a)]; },
	shift: () => { const a = mk(); return [a.shift(), show(a)]; },
	unshift: () => { const a = mk(); return [a.unshift(1, 2), show(a)]; },
	toReversed: () => mk().toReversed(),
	toSorted: () => mk().toSorted(),
	toSpliced: () => mk().toSpliced(1, 3, "z"),
	with: () => mk().with(-1, "w"),
	keys: () => [...mk().keys()].length,
	entries: () => [...mk().entries()].slice(0, 7),
	values: () => [...mk()],
	iterator: () => Array.prototype[Symbol.iterator] === Array.prototype.values,
	fromLike: () => Array.from(like),
	fromLikeMap: () => Array.from(like, (x, i) => i),
	fromIter: () => Array.from(mk()),
	likeIncludes: () => Array.prototype.includes.call(like, NaN),
	likeIndexOf: () => Array.prototype.indexOf.call(like, "y"),
	likeJoin: () => Array.prototype.join.call(like, "-"),
	stringJoin: () => Array.prototype.join.call(s, "."),
	typedIncludes: () => f64().includes(NaN),
	typedIndexOf: () => [f64().indexOf(NaN), f64().indexOf(-0), f64().indexOf(3, 100), f64().indexOf(3, -30)],
	typedLastIndexOf: () => [f64().lastIndexOf(0), f64().lastIndexOf(3, -30), f64().lastIndexOf(3, 20)],
	typedJoin: () => f64().join(";"),
	typedToString: () => String(f64()),
	typedSort: () => f64().sort(),
	typedSortCmp: () => f64().sort((a, b) => b - a),
	typedSpread: () => [...f64()],
	typedKeys: () => [...f64().keys()].length,
	typedEntries: () => [...f64().entries()].slice(0, 5),
	bigint: () => { const t = new BigInt64Array(N); t[5] = -3n; t[9] = 7n; return [show(t.sort()), t.includes(7n), t.indexOf(-3n), t.join()]; },
	stringSpread: () => [...s],
	stringSplit: () => s.split(""),
	stringSplitLimit: () => s.split("", 10),
	stringSplitSep: () => s.split("b"),
	stringReplaceAll: () => s.replaceAll("b", "$&$&"),
	regexpReplace: () => { const r = /b/g; r.lastIndex = 7; const v = s.replace(r, "[$&]"); return [v, r.lastIndex]; },
	regexpReplaceFn: () => s.replace(/(a)(b)/g, (m, x, y, i) => y + x + i),
	regexpMatch: () => s.match(/a./gu),
	regexpSplit: () => s.split(/(b)/),
	regexpSplitLimit: () => s.split(/b/, 5),
	regexpSticky: () => { const r = /ab/y; return [s.replace(r, "X").length, r.lastIndex]; },
	regexpOne: () => s.replace(/c/, "C").length,
	applyOK: () => Math.max.apply(null, [1, 5, 3]),
	jsonReviver: () => JSON.parse('{"a":[1,{"b":2}],"c":3}', function (k, v) { return typeof v === "number" ? v * 10 : v; }),
	jsonDeepOK: () => JSON.parse("[".repeat(1000) + "]".repeat(1000)).length,
	jsonStringsOK: () => JSON.parse('["[[[[\\"{{{"]'),
};
for (const k of Object.keys(cases)) {
	try { out[k] = show(cases[k]()); } catch (e) { out[k] = "threw " + e.name + ": " + e.message; }
}
JSON.stringify(out);
`

func runNativeSemantics(t *testing.T, rt *sobek.Runtime) map[string]string {
	t.Helper()
	v, err := rt.RunString(nativeSemantics)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	if err := rt.ExportTo(rt.Get("JSON").ToObject(rt).Get("parse").Export().(func(sobek.FunctionCall) sobek.Value)(sobek.FunctionCall{Arguments: []sobek.Value{v}}), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNativeBoundsKeepSemantics runs the bounded paths (bounds shrunk so
// that 300 elements exceed them) and compares with sobek's own built-ins.
func TestNativeBoundsKeepSemantics(t *testing.T) {
	saved := boundsFor
	boundsFor = func(time.Duration) nativeBounds { return nativeBounds{elems: 50, pieces: 50, steps: 50} }
	defer func() { boundsFor = saved }()

	want := runNativeSemantics(t, sobek.New())
	p := &Program{name: "semantics", limits: Limits{Timeout: 10 * time.Second}.withDefaults()}
	rt, err := p.newSandboxRuntime()
	if err != nil {
		t.Fatal(err)
	}
	got := runNativeSemantics(t, rt)
	for k, w := range want {
		g := got[k]
		if k == "stringSplit" || k == "stringSplitSep" || k == "stringReplaceAll" {
			// More pieces than the bound: refused, not computed.
			if !strings.HasPrefix(g, "threw RangeError") || !strings.Contains(g, msgNativeBound) {
				t.Errorf("%s = %.200s, want the RangeError of the bound", k, g)
			}
			continue
		}
		if g != w {
			t.Errorf("%s:\n got %.300s\nwant %.300s", k, g, w)
		}
	}
}
