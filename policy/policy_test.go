package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/charterlog/charter/policy"
)

func compile(t testing.TB, modules map[string]string, entry string, l policy.Limits) *policy.Program {
	t.Helper()
	p, err := policy.Compile(t.Name(), modules, entry, l)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func one(src string) map[string]string { return map[string]string{"main.js": src} }

func call(t testing.TB, p *policy.Program, fn string, args ...any) (any, error) {
	t.Helper()
	return p.Call(context.Background(), fn, args...)
}

func TestCallConvertsArgumentsAndResult(t *testing.T) {
	p := compile(t, one(`
export function echo(x) { return x; }
export function shape(m, list, b, n, s, t, nul) {
	return {
		m: typeof m, keys: Object.keys(m).join(","), list: Array.isArray(list), len: list.length,
		buf: b instanceof ArrayBuffer, bytes: Array.from(new Uint8Array(b)).join(","),
		n: n + 1, s: s.toUpperCase(), t: t === true, nul: nul === null,
	};
}
export function bytes() { return new Uint8Array([1, 2, 3]); }
`), "main.js", policy.Limits{})
	got, err := call(t, p, "shape", map[string]any{"b": 1, "a": "x"}, []string{"p", "q"}, []byte{7, 8}, 41, "abc", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"m": "object", "keys": "a,b", "list": true, "len": int64(2), "buf": true,
		"bytes": "7,8", "n": int64(42), "s": "ABC", "t": true, "nul": true}
	gm := got.(map[string]any)
	for k, v := range want {
		if gm[k] != v {
			t.Errorf("%s = %#v, want %#v", k, gm[k], v)
		}
	}
	b, err := call(t, p, "bytes")
	if err != nil || string(b.([]byte)) != "\x01\x02\x03" {
		t.Fatalf("bytes() = %#v, %v", b, err)
	}
	if _, err := call(t, p, "echo", func() {}); err == nil {
		t.Fatal("returning a function succeeded")
	} else if !errors.Is(err, policy.ErrConvert) {
		t.Fatalf("returning a function: %v, want ErrConvert", err)
	}
	if _, err := call(t, p, "echo", struct{ X int }{1}); !errors.Is(err, policy.ErrConvert) {
		t.Fatalf("struct argument: %v, want ErrConvert", err)
	}
}

func TestModulesAndRelativeImports(t *testing.T) {
	p := compile(t, map[string]string{
		"/app/main.js":         `import { check } from "./checks/issuer.js"; import * as util from "../lib/util.js"; export const apply = (x) => check(util.norm(x));`,
		"app/checks/issuer.js": `import { PREFIX } from "../../lib/consts.js"; export function check(s) { return s.startsWith(PREFIX) ? true : "bad issuer " + s; }`,
		"lib/util.js":          `export function norm(s) { return s.trim().toLowerCase(); } export * from "/lib/consts.js";`,
		"lib/consts.js":        `export const PREFIX = "did:x509:";`,
	}, "app/main.js", policy.Limits{})
	for in, want := range map[string]any{"  DID:X509:abc ": true, "did:web:x": "bad issuer did:web:x"} {
		got, err := call(t, p, "apply", in)
		if err != nil || got != want {
			t.Errorf("apply(%q) = %#v, %v; want %#v", in, got, err, want)
		}
	}
	if got := strings.Join(p.Exports(), ","); got != "apply" {
		t.Errorf("Exports() = %s", got)
	}
}

func TestCyclicImports(t *testing.T) {
	p := compile(t, map[string]string{
		"even.js": `import { odd } from "./odd.js"; export function even(n) { return n === 0 ? true : odd(n - 1); }`,
		"odd.js":  `import { even } from "./even.js"; export function odd(n) { return n === 0 ? false : even(n - 1); }`,
	}, "even.js", policy.Limits{})
	for n, want := range map[int]bool{0: true, 7: false, 10: true} {
		if got, err := call(t, p, "even", n); err != nil || got != want {
			t.Errorf("even(%d) = %v, %v", n, got, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		modules map[string]string
		entry   string
		want    []string // substrings of the error
	}{
		{"syntax", map[string]string{"main.js": "export function f() {\n  return 1 +;\n}"}, "main.js", []string{"main.js:2:"}},
		{"syntax in nested module", map[string]string{"main.js": `import "./lib/a.js";`, "lib/a.js": "\n\nlet x = ;"}, "main.js", []string{"lib/a.js:3:"}},
		{"syntax in unreachable module", map[string]string{"main.js": `export const x = 1;`, "other.js": "function ("}, "main.js", []string{"other.js:1:"}},
		{"unknown relative import", map[string]string{"main.js": `import { x } from "./nope.js";`}, "main.js", []string{`no module "nope.js"`}},
		{"bare specifier", map[string]string{"main.js": `import fs from "fs";`}, "main.js", []string{`import "fs"`, "relative"}},
		{"escapes bundle", map[string]string{"a/main.js": `import { x } from "../../x.js";`}, "a/main.js", []string{"leaves the bundle"}},
		{"missing binding", map[string]string{"main.js": `import { nope } from "./b.js";`, "b.js": `export const yes = 1;`}, "main.js", []string{"nope"}},
		{"missing entry", map[string]string{"main.js": `export const x = 1;`}, "other.js", []string{"entry module is not in the bundle"}},
		{"duplicate path", map[string]string{"main.js": ``, "/main.js": ``}, "main.js", []string{"two modules"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Compile("bundle", tc.modules, tc.entry, policy.Limits{})
			if !errors.Is(err, policy.ErrSyntax) {
				t.Fatalf("err = %v, want ErrSyntax", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestSyntaxErrorPosition(t *testing.T) {
	_, err := policy.Compile("b", map[string]string{"lib/x.js": "export const a = 1;\nexport const b = = 2;\n"}, "lib/x.js", policy.Limits{})
	var se *policy.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *SyntaxError", err)
	}
	if se.Module != "lib/x.js" || se.Line != 2 || se.Column != 18 {
		t.Errorf("got %s:%d:%d, want lib/x.js:2:18 (%v)", se.Module, se.Line, se.Column, err)
	}
}

func TestMissingExport(t *testing.T) {
	p := compile(t, one(`export function apply() { return true; } export const notFn = 1;`), "main.js", policy.Limits{})
	if err := p.RequireExports("apply"); err != nil {
		t.Errorf("RequireExports(apply) = %v", err)
	}
	for _, n := range []string{"nope", "notFn"} {
		if err := p.RequireExports("apply", n); !errors.Is(err, policy.ErrNoExport) {
			t.Errorf("RequireExports(%s) = %v, want ErrNoExport", n, err)
		}
		if _, err := call(t, p, n); !errors.Is(err, policy.ErrNoExport) {
			t.Errorf("Call(%s) = %v, want ErrNoExport", n, err)
		}
	}
}

func TestTopLevelThrowFailsCompile(t *testing.T) {
	_, err := policy.Compile("b", one(`throw new Error("init failed");`), "main.js", policy.Limits{})
	if !errors.Is(err, policy.ErrThrown) || !strings.Contains(err.Error(), "init failed") {
		t.Fatalf("err = %v, want ErrThrown with the message", err)
	}
}

func TestThrown(t *testing.T) {
	p := compile(t, one(`export function f(x) { if (x) throw new RangeError("bad input " + x); return 1; }
export function g() { throw { toString() { for (;;) {} } }; }`), "main.js", policy.Limits{})
	_, err := call(t, p, "f", "zz")
	var re *policy.RunError
	if !errors.Is(err, policy.ErrThrown) || !errors.As(err, &re) {
		t.Fatalf("err = %v, want ErrThrown", err)
	}
	if re.Message != "RangeError: bad input zz" || !strings.Contains(re.Stack, "main.js:1") {
		t.Errorf("message %q, stack %q", re.Message, re.Stack)
	}
	if got, err := call(t, p, "f", ""); err != nil || got != int64(1) {
		t.Fatalf("after a throw the runtime is still good: %v, %v", got, err)
	}
	// A thrown value whose toString never returns is stopped too.
	if _, err := call(t, p, "g"); !errors.Is(err, policy.ErrTimeout) {
		t.Fatalf("hostile toString: %v, want ErrTimeout", err)
	}
}
