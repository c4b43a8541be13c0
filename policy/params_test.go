package policy

import (
	"context"
	"slices"
	"testing"
)

func TestNamedParams(t *testing.T) {
	all := []bool{true, true, true, true}
	for _, tc := range []struct {
		name, src string
		want      []bool
	}{
		{"header only", `export function apply(phdr, uhdr, payload, details) { return phdr.alg === "ES256" || "no"; }`,
			[]bool{true, false, false, false}},
		{"fewer params", `export function apply(phdr) { return !!phdr; }`, []bool{true, false, false, false}},
		{"none", `export function apply() { return true; }`, []bool{false, false, false, false}},
		{"payload used", `export function apply(phdr, uhdr, payload) { return payload.byteLength > 0; }`,
			[]bool{false, false, true, false}},
		{"property of the same name is not a use", `export function apply(phdr, uhdr, payload) { return phdr.payload_hash_alg !== undefined; }`,
			[]bool{true, false, false, false}},
		{"name in a string counts", `export function apply(phdr, uhdr, payload) { return "payload"; }`,
			[]bool{false, false, true, false}},
		{"nested function", `export function apply(phdr, uhdr, payload, details) { const f = () => details; return f() ? true : "x"; }`,
			[]bool{false, false, false, true}},
		{"arguments", `export function apply(phdr) { return arguments[2] ? true : "x"; }`, all},
		{"arguments in an arrow", `export function apply() { const f = () => arguments.length; return f() === 4; }`, all},
		{"unicode escape", `export function apply(phdr, uhdr, p\u0061yload) { return p\u0061yload !== undefined; }`, all},
		{"default value", `export function apply(phdr, uhdr = {}) { return true; }`, all},
		{"destructuring", `export function apply({alg}, uhdr) { return true; }`, all},
		{"rest", `export function apply(phdr, ...rest) { return true; }`, all},
		{"rebound", `export function apply(phdr) { return true; }
apply = function (phdr, uhdr, payload) { return payload !== undefined; };`, all},
		{"rebound by a rest pattern", `export function apply(phdr) { return true; }
[...apply] = [];`, all},
		{"method named apply is fine", `export function apply(phdr) { return Math.max.apply(null, [1]) === 1 && !!phdr; }`,
			[]bool{true, false, false, false}},
		{"not a function declaration", `export const apply = (phdr, uhdr, payload) => true;`, all},
		{"exported under another name", `function apply(phdr) { return true; }
export { apply };`, all},
		{"syntax error", `export function apply(phdr) {`, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := namedParams(tc.src, "apply", 4); !slices.Equal(got, tc.want) {
				t.Errorf("namedParams = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUnobservedArgumentsAreNotBuilt checks the mask end to end: a policy
// that reads only phdr gets no payload copy (observable here only through
// the cost), and one that reads arguments gets all four.
func TestUnobservedArgumentsAreNotBuilt(t *testing.T) {
	in := PolicyInput{Protected: ProtectedHeader{Alg: "ES256"}, Payload: []byte{1, 2, 3}}
	for _, tc := range []struct {
		src  string
		want any
	}{
		{`export function apply(phdr, uhdr, payload, details) { return phdr.alg === "ES256" ? true : "alg"; }`, true},
		{`export function apply() { return arguments.length === 4 && arguments[2].byteLength === 3 ? true : "args"; }`, true},
		{`export function apply(phdr, uhdr, payload) { return payload.byteLength === 3 ? true : "payload"; }`, true},
	} {
		rp, err := NewRegistrationPolicy(tc.src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := rp.Evaluate(context.Background(), in)
		if err != nil || !v.Accepted {
			t.Errorf("%s: %+v, %v", tc.src, v, err)
		}
	}
}

// FuzzNamedParams: any source, valid or not, gets an answer of the right
// length without a panic, and a source that mentions `arguments` in apply
// is never judged to hide an argument.
func FuzzNamedParams(f *testing.F) {
	for _, s := range []string{
		`export function apply(phdr, uhdr, payload, details) { return phdr.alg === "ES256" || "no"; }`,
		`export function apply() { return arguments.length === 4; }`,
		"export function apply(a) {\n\t// ✓ ünïcode\n\treturn a.x === \"é\"; }",
		`export function apply(phdr) { return true; } apply = null;`,
		`export function apply(`,
		"\ufeffexport function apply(phdr) { return !!phdr; }",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		got := namedParams(src, "apply", 4)
		if len(got) != 4 {
			t.Fatalf("%d answers", len(got))
		}
		if wordCount(src, "arguments", false) > 0 && slices.Contains(got, false) {
			t.Fatalf("%q: an argument judged unobservable although arguments occurs: %v", src, got)
		}
	})
}
