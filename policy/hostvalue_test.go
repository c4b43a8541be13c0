package policy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/grafana/sobek"

	"github.com/charterlog/charter/policy"
)

// A HostValue global is built on the runtime that runs the call (here an
// ArrayBuffer, which no plain Go value converts to on that runtime before
// the call), and an error building it is ErrConvert, with no call made.
func TestHostValueGlobal(t *testing.T) {
	p, err := policy.Compile("t", map[string]string{"t.js": "export function f() { return g instanceof ArrayBuffer ? g.byteLength : -1 }"}, "t.js", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	buf := policy.HostValue(func(rt *sobek.Runtime) (sobek.Value, error) {
		return rt.ToValue(rt.NewArrayBuffer([]byte{1, 2, 3})), nil
	})
	out, err := p.CallWith(context.Background(), map[string]any{"g": buf}, "f")
	if err != nil || out != int64(3) {
		t.Fatalf("got %v, %v; want 3", out, err)
	}
	bad := policy.HostValue(func(*sobek.Runtime) (sobek.Value, error) { return nil, errors.New("cannot build") })
	if _, err := p.CallWith(context.Background(), map[string]any{"g": bad}, "f"); !errors.Is(err, policy.ErrConvert) {
		t.Fatalf("a HostValue that fails: %v, want ErrConvert", err)
	}
}
