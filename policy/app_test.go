package policy_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grafana/sobek"

	"github.com/charterlog/charter/policy"
)

var appBundle = map[string]string{
	"endpoints/main.js": `
import { host } from "../lib/host.js";
let counter = 0;
export function count() { counter++; globalThis.leak = (globalThis.leak || 0) + 1; return counter + "/" + globalThis.leak + "/" + host; }
export const notFn = 1;
export function spin() { for (;;) {} }
export function deep() { return deep() + 1; }
export function boom() { throw new TypeError("boom"); }
`,
	"lib/host.js": `export const host = globalThis.HOST;`,
}

func runString(t *testing.T, m *policy.Modules, fn string) (string, error) {
	t.Helper()
	var out string
	err := m.Run(context.Background(), policy.Invocation{
		Module: "endpoints/main.js",
		Func:   fn,
		Setup: func(rt *sobek.Runtime) error {
			return rt.GlobalObject().Set("HOST", "h")
		},
		Result: func(rt *sobek.Runtime, v sobek.Value) error {
			out = v.String()
			return nil
		},
	})
	return out, err
}

func TestModulesRunIsFreshPerCall(t *testing.T) {
	m, err := policy.CompileModules("app", appBundle, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		got, err := runString(t, m, "count")
		if err != nil || got != "1/1/h" {
			t.Fatalf("call %d = %q, %v; want 1/1/h (module state, globals must not leak)", i, got, err)
		}
	}
}

func TestModulesExportsAndEvaluate(t *testing.T) {
	m, err := policy.CompileModules("app", appBundle, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Has("/endpoints/main.js") || m.Has("endpoints/none.js") {
		t.Error("Has")
	}
	ex, err := m.Exports("endpoints/main.js")
	if want := []string{"boom", "count", "deep", "notFn", "spin"}; err != nil || !reflect.DeepEqual(ex, want) {
		t.Errorf("Exports = %v, %v", ex, err)
	}
	fns, err := m.Evaluate(context.Background(), "endpoints/main.js", nil)
	if want := []string{"boom", "count", "deep", "spin"}; err != nil || !reflect.DeepEqual(fns, want) {
		t.Errorf("Evaluate = %v, %v", fns, err)
	}
}

func TestModulesRunErrors(t *testing.T) {
	m, err := policy.CompileModules("app", appBundle, policy.Limits{Timeout: 20 * time.Millisecond, MaxCallStack: 100})
	if err != nil {
		t.Fatal(err)
	}
	for fn, want := range map[string]error{
		"spin":  policy.ErrTimeout,
		"deep":  policy.ErrStackOverflow,
		"boom":  policy.ErrThrown,
		"notFn": policy.ErrNoExport,
		"none":  policy.ErrNoExport,
	} {
		if _, err := runString(t, m, fn); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", fn, err, want)
		}
	}
	if got, err := runString(t, m, "count"); err != nil || got != "1/1/h" {
		t.Errorf("after failures: %q, %v", got, err)
	}
	hostErr := errors.New("host says no")
	err = m.Run(context.Background(), policy.Invocation{Module: "endpoints/main.js", Func: "count",
		Result: func(*sobek.Runtime, sobek.Value) error { return hostErr }})
	if err != hostErr {
		t.Errorf("host error = %v", err)
	}
}

func TestCompileModulesErrors(t *testing.T) {
	for name, mods := range map[string]map[string]string{
		"syntax":  {"a.js": "export function ("},
		"import":  {"a.js": `import { x } from "./b.js";`},
		"binding": {"a.js": `import { x } from "./b.js";`, "b.js": "export const y = 1;"},
	} {
		_, err := policy.CompileModules("app", mods, policy.Limits{})
		if !errors.Is(err, policy.ErrSyntax) || !strings.Contains(err.Error(), "a.js") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkModulesRun(b *testing.B) {
	m, err := policy.CompileModules("app", appBundle, policy.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	inv := policy.Invocation{Module: "endpoints/main.js", Func: "count",
		Setup: func(rt *sobek.Runtime) error { return rt.GlobalObject().Set("HOST", "h") }}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Run(context.Background(), inv); err != nil {
			b.Fatal(err)
		}
	}
}
