package policy

import "testing"

// usesGenerators must find a generator however it is written, wherever it
// sits in a module: lockdown leaves the GeneratorFunction constructor in
// place for bundles without one.
func TestUsesGenerators(t *testing.T) {
	for src, want := range map[string]bool{
		`export function f() { return 1; }`:                                              false,
		`export const f = async () => [1].map((x) => x * 2);`:                            false,
		`export class C { m() {} static s() {} get g() { return 1; } }`:                  false,
		`export function* f() {}`:                                                        true,
		`export const f = function* () {};`:                                              true,
		`export const o = { *m() {} };`:                                                  true,
		`export class C { *m() {} }`:                                                     true,
		`export class C { static *m() {} }`:                                              true,
		`export class C { static { const g = function* () {}; } }`:                       true,
		`export class C { x = function* () {}; }`:                                        true,
		"export const s = `${(function* () {})()}`;":                                     true,
		`export function f(a = function* () {}) { return a; }`:                           true,
		`export default function* () {}`:                                                 true,
		`if (true) { label: for (;;) { (() => { function* g() {} })(); break label; } }`: true,
		`const [b = function* () {}] = [];`:                                              true,
		`export const x = 1 ? { [Symbol.iterator]: function* () {} } : 0;`:               true,
	} {
		body, _, err := parseModule("m.js", src, nil)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got := usesGenerators(body); got != want {
			t.Errorf("%s: usesGenerators = %v, want %v", src, got, want)
		}
	}
}
