package policy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/charterlog/charter/policy"
)

// FuzzCompile: Compile never panics or hangs on any module source, every
// error it returns wraps one of the package's sentinels, and a program that
// compiles reports a missing export cleanly.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		fiveChecks,
		`export function apply() { return true; }`,
		`import { x } from "./lib.js"; export const y = x + 1;`,
		`export * from "./lib.js";`,
		`export default function () {}`,
		`export { x as y } from "./lib.js"; export let z = 1;`,
		`for (;;) {}`,
		`throw 1;`,
		`await Promise.resolve(1); export const a = 1;`,
		`export function f() { return new Function("return 1")(); }`,
		`export function (`,
		`import x from "fs";`,
		`import { nope } from "./lib.js";`,
		`export const a = 1; export const a = 2;`,
		"//# sourceMappingURL=/etc/passwd\nexport const a = 1;",
		`let a = /[/; export {a};`,
		"`${",
	} {
		f.Add(s)
	}
	sentinels := []error{policy.ErrSyntax, policy.ErrTimeout, policy.ErrMemory, policy.ErrStackOverflow,
		policy.ErrThrown, policy.ErrNoExport, policy.ErrConvert, policy.ErrPanic}
	f.Fuzz(func(t *testing.T, src string) {
		modules := map[string]string{
			"main.js": src,
			"lib.js":  `export const x = 1;`,
		}
		start := time.Now()
		p, err := policy.Compile("fuzz", modules, "main.js", policy.Limits{Timeout: 20 * time.Millisecond, MaxMemoryBytes: 16 << 20})
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Compile took %v", d)
		}
		if err != nil {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("Compile error wraps no sentinel: %v", err)
			}
			return
		}
		if _, err := p.Call(context.Background(), "no such export \x00"); !errors.Is(err, policy.ErrNoExport) {
			t.Fatalf("calling a missing export: %v, want ErrNoExport", err)
		}
	})
}
