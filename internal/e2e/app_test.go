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
