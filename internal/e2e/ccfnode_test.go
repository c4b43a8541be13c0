package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// CCF's node endpoints answer in the shapes of CCF's published node API
// (doc/schemas/node_openapi.json of microsoft/CCF: GetVersion__Out,
// GetNetworkInfo__Out, GetNodes__Out, GetNode__NodeInfo, GetCommit__Out,
// GetState__Out; /node/primary as CCF's tests probe it), and /app/api is
// the deployed bundle's OpenAPI document. The field names and types below
// are CCF's.
func TestCCFNodeEndpoints(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{})
	c.waitSettled(30*time.Second, 1, 2)
	leadID, _ := c.leader()
	lead, follower := c.node(leadID), c.node(3-leadID)
	hexID := regexp.MustCompile(`^[a-f0-9]{64}$`)
	txID := regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

	getObj := func(n *member, path string) map[string]any {
		t.Helper()
		r := n.get(t, path)
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %s %s", path, r.Status, r.Header.Get("Content-Type"), truncate(r.Body, 300))
		}
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return m
	}
	wantTypes := func(what string, m map[string]any, fields map[string]string) {
		t.Helper()
		for f, typ := range fields {
			v, ok := m[f]
			if !ok {
				t.Errorf("%s: no %q in %v", what, f, m)
				continue
			}
			got := "null"
			switch v.(type) {
			case string:
				got = "string"
			case float64:
				got = "integer"
			case bool:
				got = "boolean"
			case map[string]any:
				got = "object"
			case []any:
				got = "array"
			}
			if typ != "json" && got != typ {
				t.Errorf("%s: %q is %s (%v), want %s", what, f, got, v, typ)
			}
		}
	}

	// GetVersion__Out.
	wantTypes("/node/version", getObj(lead, "/node/version"), map[string]string{
		"ccf_version": "string", "quickjs_version": "string", "unsafe": "boolean"})

	// GetNodes__Out: {"nodes": [GetNode__NodeInfo]}.
	var nodes struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(follower.get(t, "/node/network/nodes").Body, &nodes); err != nil || len(nodes.Nodes) != 2 {
		t.Fatalf("/node/network/nodes: %v %v", err, nodes)
	}
	byURL := map[string]map[string]any{}
	primaries := 0
	for _, n := range nodes.Nodes {
		wantTypes("a node", n, map[string]string{"node_id": "string", "status": "string", "primary": "boolean",
			"rpc_interfaces": "object", "node_data": "json"})
		if id, _ := n["node_id"].(string); !hexID.MatchString(id) {
			t.Errorf("node_id %q is not CCF's hex id", id)
		}
		if n["status"] != "Trusted" {
			t.Errorf("node %v: status %v, want Trusted", n["node_id"], n["status"])
		}
		if n["primary"] == true {
			primaries++
		}
		iface, _ := n["rpc_interfaces"].(map[string]any)["primary_rpc_interface"].(map[string]any)
		wantTypes("an rpc interface", iface, map[string]string{"bind_address": "string", "published_address": "string"})
		byURL["https://"+iface["published_address"].(string)] = n
	}
	if primaries != 1 {
		t.Errorf("%d nodes say they are primary, want 1", primaries)
	}
	leadInfo, followerInfo := byURL[lead.URL], byURL[follower.URL]
	if leadInfo == nil || followerInfo == nil || leadInfo["primary"] != true {
		t.Fatalf("nodes by published address %v; leader %s, follower %s", byURL, lead.URL, follower.URL)
	}
	leadHex := leadInfo["node_id"].(string)

	// GET /node/network/nodes/{node_id}, /self, /primary: the same records.
	same := func(path string, n *member, want map[string]any) {
		t.Helper()
		got := getObj(n, path)
		if got["node_id"] != want["node_id"] || got["primary"] != want["primary"] || got["status"] != want["status"] {
			t.Errorf("GET %s: %v, want %v", path, got, want)
		}
	}
	same("/node/network/nodes/"+leadHex, follower, leadInfo)
	same("/node/network/nodes/self", follower, followerInfo)
	same("/node/network/nodes/primary", follower, leadInfo)
	wantCCFError(t, "an unknown node", follower.get(t, "/node/network/nodes/"+strings.Repeat("ab", 32)), http.StatusNotFound, "ResourceNotFound")
	var pending struct{ Nodes []any }
	if err := json.Unmarshal(lead.get(t, "/node/network/nodes?status=Pending").Body, &pending); err != nil || len(pending.Nodes) != 0 {
		t.Errorf("?status=Pending: %v %v, want no node", err, pending)
	}

	// GetNetworkInfo__Out, with Charter's own facts kept.
	network := getObj(follower, "/node/network")
	wantTypes("/node/network", network, map[string]string{"service_status": "string", "service_certificate": "string",
		"current_view": "integer", "primary_id": "string", "recovery_count": "integer", "service_data": "json",
		"current_service_create_txid": "string", "issuer": "string"})
	if network["primary_id"] != leadHex || network["service_status"] != "Open" || !txID.MatchString(network["current_service_create_txid"].(string)) {
		t.Errorf("/node/network: %v; want primary_id %s, Open", network, leadHex)
	}

	// GetCommit__Out; CCF's view_history is refused, not ignored.
	commit := getObj(lead, "/node/commit")
	if id, _ := commit["transaction_id"].(string); !txID.MatchString(id) || id == "0.0" {
		t.Errorf("/node/commit: %v", commit)
	}
	wantCCFError(t, "/node/commit?view_history", lead.get(t, "/node/commit?view_history=true"), http.StatusBadRequest, "InvalidQueryParameterValue")

	// GetState__Out.
	state := getObj(follower, "/node/state")
	wantTypes("/node/state", state, map[string]string{"node_id": "string", "state": "string",
		"last_signed_seqno": "integer", "startup_seqno": "integer"})
	if state["node_id"] != followerInfo["node_id"] || state["state"] != "PartOfNetwork" {
		t.Errorf("/node/state of the follower: %v, want node_id %v, PartOfNetwork", state, followerInfo["node_id"])
	}

	// /node/primary: 200 on the primary; elsewhere GET is 404 and HEAD a
	// 308 to the primary's /node/primary. /node/backup the other way.
	if r := lead.get(t, "/node/primary"); r.Status != http.StatusOK {
		t.Errorf("GET /node/primary on the leader: %d", r.Status)
	}
	wantCCFError(t, "GET /node/primary on a follower", follower.get(t, "/node/primary"), http.StatusNotFound, "ResourceNotFound")
	if r, err := follower.do(http.MethodHead, "/node/primary", "", nil); err != nil || r.Status != http.StatusPermanentRedirect || r.Header.Get("Location") != lead.URL+"/node/primary" {
		t.Errorf("HEAD /node/primary on a follower: %v %v, want 308 to %s/node/primary", r, err, lead.URL)
	}
	if r := follower.get(t, "/node/backup"); r.Status != http.StatusOK {
		t.Errorf("GET /node/backup on a follower: %d", r.Status)
	}
	wantCCFError(t, "GET /node/backup on the leader", lead.get(t, "/node/backup"), http.StatusNotFound, "ResourceNotFound")

	// /app/api: empty before an app is deployed, then the bundle's
	// endpoints with their own OpenAPI, without the hidden one.
	api := getObj(lead, "/app/api")
	if api["openapi"] != "3.0.0" || len(api["paths"].(map[string]any)) != 0 {
		t.Errorf("/app/api without an app: %v", api)
	}
	ep := func(fn string, extra map[string]any) map[string]any {
		m := map[string]any{"js_module": "endpoints/m.js", "js_function": fn, "authn_policies": []string{"no_auth"},
			"forwarding_required": "never", "mode": "readonly"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	bundle, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"endpoints": map[string]any{
			"/items/{id}": map[string]any{"get": ep("item", map[string]any{"openapi": map[string]any{
				"summary": "one item", "responses": map[string]any{"200": map[string]any{"description": "the item"}}}})},
			"/hidden": map[string]any{"get": ep("hidden", map[string]any{"openapi_hidden": true})},
		}},
		"modules": []map[string]string{{"name": "endpoints/m.js",
			"module": "export function item() { return {body: {}}; }\nexport function hidden() { return {body: {}}; }"}},
	})
	bundlePath := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(bundlePath, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(charterCLI, "app", "deploy", "--bundle", bundlePath, "--url", lead.URL, "--cacert", c.certPath,
		"--member-key", filepath.Join(c.dir, "member0_privk.pem"), "--member-cert", filepath.Join(c.dir, "member0_cert.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("charter app deploy: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "the follower's /app/api lists the deployed endpoints", func() error {
		api := getObj(follower, "/app/api")
		paths, _ := api["paths"].(map[string]any)
		item, _ := paths["/items/{id}"].(map[string]any)
		get, _ := item["get"].(map[string]any)
		if get == nil {
			return fmt.Errorf("paths %v", paths)
		}
		if _, ok := paths["/hidden"]; ok {
			return fmt.Errorf("/hidden (openapi_hidden) is listed")
		}
		params, _ := item["parameters"].([]any)
		p0, _ := func() (map[string]any, bool) {
			if len(params) != 1 {
				return nil, false
			}
			m, ok := params[0].(map[string]any)
			return m, ok
		}()
		if get["summary"] != "one item" || p0["name"] != "id" || p0["in"] != "path" || p0["required"] != true {
			return fmt.Errorf("/items/{id}: %v", item)
		}
		if servers, _ := api["servers"].([]any); len(servers) != 1 || servers[0].(map[string]any)["url"] != "/app" {
			return fmt.Errorf("servers %v", api["servers"])
		}
		return nil
	})
}
