package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Governance deploys a JS app by proposal: `charter app deploy` builds the
// banking sample's bundle from its folder, proposes set_js_app and votes;
// a bundle whose endpoint names a function its module does not export is
// refused at proposal time with that reason.
func TestAppDeployByProposal(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	member := []string{"--url", c.node(1).URL, "--cacert", c.certPath,
		"--member-key", filepath.Join(c.dir, "member0_privk.pem"), "--member-cert", filepath.Join(c.dir, "member0_cert.pem")}

	broken := filepath.Join(t.TempDir(), "bundle.json")
	b, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"endpoints": map[string]any{"/hello": map[string]any{"get": map[string]any{
			"js_module": "endpoints/hello.js", "js_function": "hello", "authn_policies": []string{"no_auth"},
			"forwarding_required": "never", "mode": "readonly"}}}},
		"modules": []map[string]string{{"name": "endpoints/hello.js", "module": "export function goodbye() { return {}; }"}},
	})
	if err := os.WriteFile(broken, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(charterCLI, append([]string{"app", "deploy", "--bundle", broken}, member...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `does not export "hello"`) {
		t.Fatalf("deploying a bundle with a missing export: %v\n%s", err, out)
	}

	out, err = exec.Command(charterCLI, append([]string{"app", "deploy", "--bundle", filepath.Join("..", "..", "samples", "banking")}, member...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Accepted") {
		t.Fatalf("charter app deploy samples/banking: %v\n%s", err, out)
	}
}

// writeBundle writes a one-module bundle whose endpoints (GET, no_auth,
// readonly) are the functions named.
func writeBundle(t *testing.T, module string, policies []string, fns ...string) string {
	t.Helper()
	eps := map[string]any{}
	for _, f := range fns {
		eps["/"+f] = map[string]any{"get": map[string]any{
			"js_module": "endpoints/m.js", "js_function": f, "authn_policies": policies,
			"forwarding_required": "never", "mode": "readonly"}}
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"endpoints": eps},
		"modules": []map[string]string{{"name": "endpoints/m.js", "module": module}}})
	p := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bundles that could never run are refused at proposal time; an app that
// throws, loops or allocates without bound is stopped within its limits
// and answers 500, and the node keeps serving.
func TestAppBadInput(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	member := []string{"--url", c.node(1).URL, "--cacert", c.certPath,
		"--member-key", filepath.Join(c.dir, "member0_privk.pem"), "--member-cert", filepath.Join(c.dir, "member0_cert.pem")}
	deploy := func(bundle string) (string, error) {
		out, err := exec.Command(charterCLI, append([]string{"app", "deploy", "--bundle", bundle}, member...)...).CombinedOutput()
		return string(out), err
	}
	for name, tc := range map[string]struct {
		bundle, want string
	}{
		"syntax error":   {writeBundle(t, "export function f( { return {}; }", []string{"no_auth"}, "f"), "syntax error: endpoints/m.js:1"},
		"unknown policy": {writeBundle(t, "export function f() { return {}; }", []string{"password"}, "f"), "password"},
		"malformed":      {writeBundle(t, "export function f() { return {}; }", nil, "f"), "authn_policies"},
	} {
		if out, err := deploy(tc.bundle); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: deploy %v, want a refusal mentioning %q:\n%s", name, err, tc.want, out)
		}
	}

	mod := `
export function ok() { return { body: { ok: true } }; }
export function thrower() { throw new Error("boom"); }
export function loop() { for (;;) {} }
export function hog() { const a = []; for (;;) { a.push(new Array(1 << 16).fill(7)); } }
export function deep() { return deep() + 1; }
`
	if out, err := deploy(writeBundle(t, mod, []string{"no_auth"}, "ok", "thrower", "loop", "hog", "deep")); err != nil {
		t.Fatalf("deploying the test app: %v\n%s", err, out)
	}
	for _, f := range []string{"thrower", "loop", "hog", "deep"} {
		s, _, b := appCall(t, c, 1, nil, "GET", "/"+f, "")
		if s != 500 || !strings.Contains(b, "Exception thrown while executing.") {
			t.Errorf("GET /app/%s: %d %s, want 500 InternalError", f, s, b)
		}
		if s, _, b := appCall(t, c, 1, nil, "GET", "/ok", ""); s != 200 || !strings.Contains(b, `"ok":true`) {
			t.Fatalf("after /app/%s the node does not serve: %d %s", f, s, b)
		}
	}
	if r := c.node(1).get(t, "/node/health"); r.Status != 200 {
		t.Fatalf("health after the bad app: %d", r.Status)
	}
}
