package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/policy"
)

// The memory guards must refuse oversized single allocations however the
// constructor or method is reached, and otherwise behave as the built-ins
// they wrap (names, lengths, instanceof, subclassing, species).
func TestLockdownGuardsAreTransparentAndComplete(t *testing.T) {
	const limit = 32 << 20
	p := compile(t, one(`
// Module top-level code runs on a fresh runtime: Float32Array is still
// unguarded (lazily guarded) here.
let assignBeforeRead;
try { Float32Array = 1; assignBeforeRead = "assigned"; } catch (e) { assignBeforeRead = e.name; }
function r(f) { try { return "ok: " + String(f()); } catch (e) { return (e instanceof RangeError ? "RangeError" : String(e)); } }
export const PROBES = {
	// refused: more than the limit in one native step
	repeat: () => "ab".repeat(1e8).length,
	padStart: () => "x".padStart(1e8).length,
	padEnd: () => "x".padEnd(1e8, "y").length,
	buffer: () => new ArrayBuffer(1e11).byteLength,
	bufferViaConstructor: () => new (new ArrayBuffer(1).constructor)(1e11).byteLength,
	bufferSubclass: () => { class B extends ArrayBuffer {} return new B(1e11).byteLength; },
	typed: () => new Float64Array(1e9).length,
	typedViaConstructor: () => new (new Uint8Array(1).constructor)(1e9).length,
	typedFromArrayLike: () => new Uint8Array({ length: 1e10 }).length,
	typedFrom: () => Float64Array.from({ length: 1e10 }).length,
	typedOf: () => Float64Array.of.call(Float64Array, 1, 2).length,
	typedSubclass: () => { class T extends Float64Array {} return new T(1e9).length; },
	typedReflect: () => Reflect.construct(Int32Array, [1e9]).length,
	typedBigInt: () => new BigUint64Array(1e9).length,
	// (Program pools runtimes: probes that change built-ins undo it.)
	typedSpoofedBuffer: () => { Object.defineProperty(ArrayBuffer, Symbol.hasInstance, { value: () => true, configurable: true });
		try { return new Float64Array({ length: 1e10 }).length; } finally { delete ArrayBuffer[Symbol.hasInstance]; } },
	typedFunctionLength: () => { const f = function () {}; Object.defineProperty(f, "length", { value: 1e10 }); return new Uint8Array(f).length; },
	reflectReplaced: () => { const orig = Reflect.construct; let leaked; Reflect.construct = (c, a, n) => { leaked = c; return orig(c, a, n); };
		try { class T extends Uint8Array {} new T(1); return leaked === undefined ? "no leak" : new leaked(1e9).length; } finally { Reflect.construct = orig; } },
	// allowed, and the built-ins still look and behave like themselves
	smallRepeat: () => "ab".repeat(3) + "x".padStart(3, "-") + "x".padEnd(3, "+"),
	names: () => [ArrayBuffer, Uint8Array, Float64Array, BigInt64Array].map((c) => c.name + "/" + c.length).join(","),
	methodNames: () => ["repeat", "padStart", "padEnd"].map((n) => String.prototype[n].name).join(","),
	bpe: () => Uint16Array.BYTES_PER_ELEMENT + Uint16Array.prototype.BYTES_PER_ELEMENT,
	instance: () => [new ArrayBuffer(2) instanceof ArrayBuffer, new Uint8Array(2) instanceof Uint8Array,
		new Uint8Array(2).buffer instanceof ArrayBuffer, new Uint8Array(2).buffer.constructor === ArrayBuffer,
		new Uint8Array(2).constructor === Uint8Array, Object.getPrototypeOf(Uint8Array) === Object.getPrototypeOf(Int8Array),
		ArrayBuffer.isView(new Uint8Array(1)), new Uint8Array(4).subarray(1).constructor === Uint8Array].join(","),
	views: () => [new Uint8Array(new ArrayBuffer(8), 2, 3).length, new Uint8Array([1, 2, 3]).map((x) => x * 2).join("-"),
		new Uint8Array(4).slice(1).length, new ArrayBuffer(8).slice(2).byteLength, Uint8Array.from([5, 6]).join("")].join(","),
	subclass: () => { class T extends Uint8Array { sum() { return this.reduce((a, b) => a + b, 0); } } const x = new T([1, 2, 3]); return x instanceof T && x instanceof Uint8Array ? x.sum() : "bad"; },
	callWithoutNew: () => Uint8Array(2),
	bufferWithoutNew: () => ArrayBuffer(2),
	assignBeforeRead: () => assignBeforeRead + " " + Float32Array.name,
	frozenGlobals: () => { "use strict"; try { Uint8Array = 1; return "assigned"; } catch (e) { return e.name; } },
	fill: () => new Array(5).fill(7, 1, -1).join(",") + "|" + Array.prototype.fill.name,
	fillEdges: () => [[1, 2, 3, 4].fill(0, -Infinity, Infinity), [1, 2, 3].fill(9, NaN, 2), [1, 2, 3, 4].fill(5, 1.7, -1.2),
		[1, 2, 3].fill(8, "1"), Array.from(Array.prototype.fill.call({ length: "2" }, 6))].map((a) => a.join("")).join(","),
};
export function probe(code) { return r(PROBES[code]); }
`), "main.js", policy.Limits{Timeout: 5 * time.Second, MaxMemoryBytes: limit})
	for code, want := range map[string]string{
		"repeat": "RangeError", "padStart": "RangeError", "padEnd": "RangeError",
		"buffer": "RangeError", "bufferViaConstructor": "RangeError", "bufferSubclass": "RangeError",
		"typed": "RangeError", "typedViaConstructor": "RangeError", "typedFromArrayLike": "RangeError",
		"typedFrom": "RangeError", "typedOf": "ok: 2", "typedSubclass": "RangeError", "typedReflect": "RangeError",
		"typedBigInt": "RangeError", "typedSpoofedBuffer": "RangeError", "typedFunctionLength": "RangeError",
		"reflectReplaced":  "ok: no leak",
		"smallRepeat":      "ok: ababab--xx++",
		"names":            "ok: ArrayBuffer/1,Uint8Array/3,Float64Array/3,BigInt64Array/3",
		"methodNames":      "ok: repeat,padStart,padEnd",
		"bpe":              "ok: 4",
		"instance":         "ok: true,true,true,true,true,true,true,true",
		"views":            "ok: 3,2-4-6,3,6,56",
		"subclass":         "ok: 6",
		"callWithoutNew":   "TypeError: Constructor Uint8Array requires 'new'",
		"bufferWithoutNew": "TypeError: Constructor ArrayBuffer requires 'new'",
		"frozenGlobals":    "ok: TypeError",
		"assignBeforeRead": "ok: TypeError Float32Array",
		"fill":             "ok: ,7,7,7,|fill",
		"fillEdges":        "ok: 0000,993,1554,188,66",
	} {
		got, err := call(t, p, "probe", code)
		if err != nil {
			t.Errorf("%s: %v", code, err)
			continue
		}
		if s, _ := got.(string); !strings.HasPrefix(s, want) {
			t.Errorf("%s:\n got %q\nwant %q", code, got, want)
		}
	}
}
