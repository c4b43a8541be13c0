package gov_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
)

// A bundle in CCF's shape: one module, one endpoint.
const testBundle = `{
  "metadata": {"endpoints": {"/hello/{name}": {"get": {
    "js_module": "endpoints/hello.js", "js_function": "hello",
    "forwarding_required": "never", "mode": "readonly",
    "authn_policies": ["user_cert", {"all_of": ["user_cert", "jwt"]}, "no_auth"]}}}},
  "modules": [{"name": "endpoints/hello.js", "module": "export function hello(r) { return {body: 'hi ' + r.params.name} }"}]
}`

// withBundle returns testBundle with edit applied to its decoded form.
func withBundle(t *testing.T, edit func(b map[string]any)) json.RawMessage {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal([]byte(testBundle), &b); err != nil {
		t.Fatal(err)
	}
	edit(b)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func endpoint(b map[string]any) map[string]any {
	return b["metadata"].(map[string]any)["endpoints"].(map[string]any)["/hello/{name}"].(map[string]any)["get"].(map[string]any)
}

func action(name, args string) govwire.Action {
	return govwire.Action{Name: name, Args: json.RawMessage(args)}
}

// proposeErr proposes one action and returns the error.
func (e *env) proposeErr(a govwire.Action) error {
	e.t.Helper()
	_, err := e.s.Propose(e.ctx, e.m[0].sign(e.t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{a}}))
	return err
}

// pass proposes actions and votes them through with the only member.
func (e *env) pass(actions ...govwire.Action) *gov.Result {
	e.t.Helper()
	p := e.propose(e.m[0], actions...)
	r, err := e.vote(e.m[0], p.ProposalID, accept)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func b64DER(m *testMember) string { return base64.StdEncoding.EncodeToString(m.cert.Raw) }

// Each new action refuses bad arguments at proposal time, with a message
// that names what is wrong.
func TestActionValidation(t *testing.T) {
	e := newEnv(t, 1)
	e.activate(e.m[0])
	cert := newTestMember(t, "k")
	bundleArgs := func(b json.RawMessage) string { return `{"bundle": ` + string(b) + `}` }
	for _, c := range []struct {
		name, action, args, want string
	}{
		{"bundle not object", "set_js_app", `{"bundle": "x"}`, "argument bundle must be an object"},
		{"bundle without modules", "set_js_app", `{"bundle": {"metadata": {"endpoints": {}}}}`, "bundle.modules must be an array"},
		{"module shape", "set_js_app", `{"bundle": {"metadata": {"endpoints": {}}, "modules": [{"name": "a"}]}}`, "bundle.modules[0] must be {name: string, module: string}"},
		{"no endpoints", "set_js_app", `{"bundle": {"metadata": {}, "modules": []}}`, "bundle.metadata.endpoints must be an object"},
		{"missing module", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { endpoint(b)["js_module"] = "nope.js" })), "endpoint GET /hello/{name}: module nope.js is not in the bundle"},
		{"bad mode", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { endpoint(b)["mode"] = "rw" })), `endpoint GET /hello/{name}: mode must be one of readwrite, readonly, historical, not "rw"`},
		{"bad forwarding", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { delete(endpoint(b), "forwarding_required") })), "forwarding_required must be one of sometimes, always, never"},
		{"bad redirection", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { endpoint(b)["redirection_strategy"] = "x" })), "redirection_strategy must be one of none, to_primary, to_backup"},
		{"bad policy", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { endpoint(b)["authn_policies"] = []any{"cookie"} })), "authn policy must be one of user_cert"},
		{"bad all_of", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { endpoint(b)["authn_policies"] = []any{map[string]any{"any_of": []any{"jwt"}}} })), `an authn policy is a name or {"all_of": [names]}`},
		{"js_function", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { endpoint(b)["js_function"] = 3 })), "js_function must be a string"},
		{"openapi", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) { endpoint(b)["openapi"] = "x" })), "openapi must be an object"},
		{"method", "set_js_app", bundleArgs(withBundle(t, func(b map[string]any) {
			ep := b["metadata"].(map[string]any)["endpoints"].(map[string]any)["/hello/{name}"].(map[string]any)
			ep["GET"] = ep["get"]
			delete(ep, "get")
		})), "method must be one of get, put, post"},
		{"disable_bytecode_cache", "set_js_app", `{"bundle": ` + testBundle + `, "disable_bytecode_cache": "yes"}`, "argument disable_bytecode_cache must be a boolean"},
		{"remove_js_app args", "remove_js_app", `{"x": 1}`, "unknown argument x"},
		{"heap missing", "set_js_runtime_options", `{"max_stack_bytes": 1024, "max_execution_time_ms": 100}`, "argument max_heap_bytes must be an integer in [1, 4294967296]"},
		{"heap zero", "set_js_runtime_options", `{"max_heap_bytes": 0, "max_stack_bytes": 1024, "max_execution_time_ms": 100}`, "argument max_heap_bytes must be an integer in [1, 4294967296]"},
		{"stack huge", "set_js_runtime_options", `{"max_heap_bytes": 1024, "max_stack_bytes": 1e12, "max_execution_time_ms": 100}`, "argument max_stack_bytes must be an integer in [1, 268435456]"},
		{"time fraction", "set_js_runtime_options", `{"max_heap_bytes": 1024, "max_stack_bytes": 1024, "max_execution_time_ms": 1.5}`, "argument max_execution_time_ms must be an integer in [1, 600000]"},
		{"interpreters", "set_js_runtime_options", `{"max_heap_bytes": 1024, "max_stack_bytes": 1024, "max_execution_time_ms": 1, "max_cached_interpreters": -1}`, "argument max_cached_interpreters must be an integer in [0, 1024]"},
		{"log details", "set_js_runtime_options", `{"max_heap_bytes": 1024, "max_stack_bytes": 1024, "max_execution_time_ms": 1, "log_exception_details": 1}`, "argument log_exception_details must be a boolean"},
		{"user id", "set_user_data", `{"user_id": "AB", "user_data": {}}`, "argument user_id must be 32 bytes of lower-case hex"},
		{"user cert", "set_user", `{"cert": "not a cert"}`, "memberIdOf: not a PEM certificate"},
		{"issuer", "set_jwt_issuer", `{}`, "argument issuer must be a string"},
		{"key_filter", "set_jwt_issuer", `{"issuer": "https://i", "key_filter": "sgx"}`, `key_filter must be one of all, not "sgx"`},
		{"auto_refresh bundle", "set_jwt_issuer", `{"issuer": "https://i", "auto_refresh": true}`, "ca_cert_bundle_name is missing but required if auto_refresh is true"},
		{"auto_refresh http", "set_jwt_issuer", `{"issuer": "http://i", "auto_refresh": true, "ca_cert_bundle_name": "b"}`, "issuer must be a URL starting with https:// if auto_refresh is true"},
		{"auto_refresh query", "set_jwt_issuer", `{"issuer": "https://i/?a=b", "auto_refresh": true, "ca_cert_bundle_name": "b"}`, "issuer must be a URL without query or fragment"},
		{"issuer jwks", "set_jwt_issuer", `{"issuer": "https://i", "jwks": {"keys": []}}`, "argument jwks must be {keys: [at least one JWK]}"},
		{"jwks kid", "set_jwt_public_signing_keys", `{"issuer": "i", "jwks": {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}}`, "jwks.keys[0]: kid must be a non-empty string"},
		{"jwks x5c", "set_jwt_public_signing_keys", `{"issuer": "i", "jwks": {"keys": [{"kid": "k", "kty": "RSA", "x5c": ["AAAA"]}]}}`, "jwks.keys[0]: x5c[0] is not a base64 DER certificate"},
		{"jwks rsa", "set_jwt_public_signing_keys", `{"issuer": "i", "jwks": {"keys": [{"kid": "k", "kty": "RSA", "n": "a+b"}]}}`, "jwks.keys[0]: RSA key needs n (base64url)"},
		{"jwks ec", "set_jwt_public_signing_keys", `{"issuer": "i", "jwks": {"keys": [{"kid": "k", "kty": "EC", "crv": "P-192", "x": "a", "y": "b"}]}}`, `jwks.keys[0]: crv must be one of P-256, P-384, P-521, not "P-192"`},
		{"jwks kty", "set_jwt_public_signing_keys", `{"issuer": "i", "jwks": {"keys": [{"kid": "k", "kty": "oct", "k": "a"}]}}`, "jwks.keys[0]: kty must be RSA or EC when there is no x5c"},
		{"remove issuer", "remove_jwt_issuer", `{"issuer": 1}`, "argument issuer must be a string"},
		{"ca name", "set_ca_cert_bundle", `{"name": "", "cert_bundle": ""}`, "argument name must not be empty"},
		{"ca bundle", "set_ca_cert_bundle", `{"name": "b", "cert_bundle": "junk"}`, "argument cert_bundle must be PEM certificates"},
		{"ca bundle bad cert", "set_ca_cert_bundle", `{"name": "b", "cert_bundle": ` + jsonString(cert.pem+"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") + `}`, "argument cert_bundle: certificate 1 is not a certificate"},
		{"ca bundle trailing", "set_ca_cert_bundle", `{"name": "b", "cert_bundle": ` + jsonString(cert.pem+"junk") + `}`, "argument cert_bundle must be PEM certificates"},
		{"remove ca", "remove_ca_cert_bundle", `{}`, "argument name must be a string"},
		{"virtual measurement", "add_virtual_measurement", `{"measurement": "abcd"}`, "argument measurement must be 48 bytes of lower-case hex"},
		{"remove virtual measurement", "remove_virtual_measurement", `{"measurement": 1}`, "argument measurement must be a string"},
	} {
		err := e.proposeErr(action(c.action, c.args))
		if !errors.Is(err, gov.ErrInvalidProposal) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\n\twant ProposalInvalid with %q", c.name, err, c.want)
		}
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestAppActionsApply(t *testing.T) {
	e := newEnv(t, 1)
	e.activate(e.m[0])
	e.pass(action("set_js_app", `{"bundle": `+testBundle+`, "disable_bytecode_cache": true}`))
	var stored map[string]any
	if err := json.Unmarshal([]byte(e.kv(govwire.MapAppBundle, govwire.KeyAppBundle)), &stored); err != nil {
		t.Fatalf("stored bundle: %v", err)
	}
	if mods := stored["modules"].([]any); len(mods) != 1 || mods[0].(map[string]any)["name"] != "endpoints/hello.js" {
		t.Fatalf("stored modules: %v", mods)
	}
	if got := e.kv(govwire.MapAppBundle, govwire.KeyDisableBytecodeCache); got != "true" {
		t.Fatalf("disable_bytecode_cache: %q", got)
	}
	e.pass(action("remove_js_app", `{}`))
	if got := e.kv(govwire.MapAppBundle, govwire.KeyAppBundle); got != "" {
		t.Fatalf("bundle after remove_js_app: %q", got)
	}

	e.pass(action("set_js_runtime_options", `{"max_heap_bytes": 104857600, "max_stack_bytes": 1048576, "max_execution_time_ms": 1000, "return_exception_details": true}`))
	var opts govwire.JSRuntimeOptions
	if err := json.Unmarshal([]byte(e.kv(govwire.MapJSRuntimeOptions, govwire.KeyJSRuntimeOptions)), &opts); err != nil {
		t.Fatal(err)
	}
	want := govwire.JSRuntimeOptions{MaxHeapBytes: 104857600, MaxStackBytes: 1048576, MaxExecutionTimeMS: 1000, ReturnExceptionDetails: true, MaxCachedInterpreters: 10}
	if opts != want {
		t.Fatalf("runtime options %+v, want %+v", opts, want)
	}

	m := "ab" + strings.Repeat("0", 94)
	e.pass(action("add_virtual_measurement", `{"measurement": "`+m+`"}`))
	if got := e.kv(govwire.MapVirtualMeasurements, m); got != "{}" {
		t.Fatalf("virtual measurement: %q", got)
	}
	e.pass(action("remove_virtual_measurement", `{"measurement": "`+m+`"}`))
	if got := e.kv(govwire.MapVirtualMeasurements, m); got != "" {
		t.Fatalf("virtual measurement after removal: %q", got)
	}
}

func TestUserActionsApply(t *testing.T) {
	e := newEnv(t, 1)
	e.activate(e.m[0])
	u := newTestMember(t, "user")
	// Without user_data, CCF writes no info.
	e.pass(action("set_user", `{"cert": `+jsonString(u.pem)+`}`))
	if e.kv(govwire.MapUserCerts, u.id) != u.pem || e.kv(govwire.MapUserInfo, u.id) != "" {
		t.Fatalf("set_user without data: cert %q info %q", e.kv(govwire.MapUserCerts, u.id), e.kv(govwire.MapUserInfo, u.id))
	}
	e.pass(action("set_user_data", `{"user_id": "`+u.id+`", "user_data": {"isAdmin": true}}`))
	if got := e.kv(govwire.MapUserInfo, u.id); got != `{"user_data":{"isAdmin":true}}` {
		t.Fatalf("user info: %s", got)
	}
	e.pass(action("set_user_data", `{"user_id": "`+u.id+`"}`))
	if got := e.kv(govwire.MapUserInfo, u.id); got != "" {
		t.Fatalf("user info after clearing: %s", got)
	}
	e.pass(action("set_user", `{"cert": `+jsonString(u.pem)+`, "user_data": "x"}`))
	if got := e.kv(govwire.MapUserInfo, u.id); got != `{"user_data":"x"}` {
		t.Fatalf("set_user with data: %s", got)
	}
	// set_user_data on a stranger fails in apply.
	stranger := newTestMember(t, "stranger")
	if r := e.pass(action("set_user_data", `{"user_id": "`+stranger.id+`", "user_data": 1}`)); r.Info.State != govwire.StateFailed || !strings.Contains(r.Info.Failure.Reason, "no user "+stranger.id) {
		t.Fatalf("set_user_data on a stranger: %+v", r.Info)
	}
	e.pass(action("remove_user", `{"user_id": "`+u.id+`"}`))
	if e.kv(govwire.MapUserCerts, u.id) != "" || e.kv(govwire.MapUserInfo, u.id) != "" {
		t.Fatal("remove_user left the user")
	}
}

func TestJWTActionsApply(t *testing.T) {
	e := newEnv(t, 1)
	e.activate(e.m[0])
	ca := newTestMember(t, "ca")
	x5cKey := newTestMember(t, "jwt signer")

	// Keys for an unknown issuer: Failed in apply.
	keys := `{"keys": [{"kid": "k1", "kty": "EC", "x5c": ["` + b64DER(x5cKey) + `"]}]}`
	if r := e.pass(action("set_jwt_public_signing_keys", `{"issuer": "https://a", "jwks": `+keys+`}`)); r.Info.State != govwire.StateFailed || !strings.Contains(r.Info.Failure.Reason, "https://a is not a registered JWT issuer") {
		t.Fatalf("keys of an unknown issuer: %+v", r.Info)
	}
	// auto_refresh with a bundle that does not exist: Failed.
	if r := e.pass(action("set_jwt_issuer", `{"issuer": "https://a", "auto_refresh": true, "ca_cert_bundle_name": "roots"}`)); r.Info.State != govwire.StateFailed || !strings.Contains(r.Info.Failure.Reason, "no CA cert bundle named roots") {
		t.Fatalf("auto_refresh without its bundle: %+v", r.Info)
	}
	e.pass(action("set_ca_cert_bundle", `{"name": "roots", "cert_bundle": `+jsonString(ca.pem+ca.pem)+`}`))
	if e.kv(govwire.MapCACertBundles, "roots") != ca.pem+ca.pem {
		t.Fatal("CA bundle not stored")
	}
	e.pass(action("set_jwt_issuer", `{"issuer": "https://a", "auto_refresh": true, "ca_cert_bundle_name": "roots", "key_filter": "all", "jwks": `+keys+`}`))
	var iss govwire.JWTIssuer
	if err := json.Unmarshal([]byte(e.kv(govwire.MapJWTIssuers, "https://a")), &iss); err != nil || iss != (govwire.JWTIssuer{AutoRefresh: true, CACertBundleName: "roots", KeyFilter: "all"}) {
		t.Fatalf("issuer: %+v, %v", iss, err)
	}
	readKeys := func(kid string) []govwire.JWTKey {
		t.Helper()
		raw := e.kv(govwire.MapJWTKeys, kid)
		if raw == "" {
			return nil
		}
		var ks []govwire.JWTKey
		if err := json.Unmarshal([]byte(raw), &ks); err != nil {
			t.Fatal(err)
		}
		return ks
	}
	if ks := readKeys("k1"); len(ks) != 1 || ks[0].Cert != b64DER(x5cKey) || ks[0].Issuer != "https://a" {
		t.Fatalf("k1 after set_jwt_issuer with jwks: %+v", ks)
	}

	// A second issuer, keys without x5c, one under the same kid and one
	// with an issuer constraint.
	e.pass(action("set_jwt_issuer", `{"issuer": "https://b"}`))
	e.pass(action("set_jwt_public_signing_keys", `{"issuer": "https://b", "jwks": {"keys": [
		{"kid": "k1", "kty": "RSA", "n": "sXch", "e": "AQAB"},
		{"kid": "k2", "kty": "EC", "crv": "P-256", "x": "eA", "y": "eQ", "issuer": "https://b/tenant"}]}}`))
	if ks := readKeys("k1"); len(ks) != 2 || ks[1].Issuer != "https://b" || string(ks[1].JWK) != `{"kty":"RSA","kid":"k1","n":"sXch","e":"AQAB"}` {
		t.Fatalf("k1 with two issuers: %+v", ks)
	}
	if ks := readKeys("k2"); len(ks) != 1 || ks[0].Constraint != "https://b/tenant" {
		t.Fatalf("k2: %+v", ks)
	}
	// Setting b's keys again replaces all of them: k2 goes.
	e.pass(action("set_jwt_public_signing_keys", `{"issuer": "https://b", "jwks": {"keys": [{"kid": "k3", "kty": "RSA", "n": "sXch", "e": "AQAB"}]}}`))
	if ks := readKeys("k2"); ks != nil {
		t.Fatalf("k2 after replacing b's keys: %+v", ks)
	}
	if ks := readKeys("k1"); len(ks) != 1 || ks[0].Issuer != "https://a" {
		t.Fatalf("k1 after replacing b's keys: %+v", ks)
	}
	// Removing issuer a removes its keys and only them.
	e.pass(action("remove_jwt_issuer", `{"issuer": "https://a"}`))
	if e.kv(govwire.MapJWTIssuers, "https://a") != "" || readKeys("k1") != nil || readKeys("k3") == nil {
		t.Fatalf("after remove_jwt_issuer: issuer %q k1 %v k3 %v", e.kv(govwire.MapJWTIssuers, "https://a"), readKeys("k1"), readKeys("k3"))
	}
	if r := e.pass(action("remove_jwt_issuer", `{"issuer": "https://never"}`)); r.Info.State != govwire.StateFailed || !strings.Contains(r.Info.Failure.Reason, "no JWT issuer https://never") {
		t.Fatalf("removing an absent issuer: %+v", r.Info)
	}
	e.pass(action("remove_ca_cert_bundle", `{"name": "roots"}`))
	if e.kv(govwire.MapCACertBundles, "roots") != "" {
		t.Fatal("CA bundle not removed")
	}
}

// The node's app validator runs at proposal time: a bundle it refuses is
// ProposalInvalid with its message, and nothing is written.
func TestValidateAppAtProposal(t *testing.T) {
	var seen []string
	e := newEnvConfig(t, 1, gov.Config{ValidateApp: func(b []byte) error {
		seen = append(seen, string(b))
		if strings.Contains(string(b), "MARKER") {
			return errors.New(`module endpoints/hello.js: js_function "hello" is not exported (MARKER)`)
		}
		return nil
	}})
	e.activate(e.m[0])
	bad := withBundle(t, func(b map[string]any) {
		b["modules"].([]any)[0].(map[string]any)["module"] = "export const MARKER = 1"
	})
	err := e.proposeErr(action("set_js_app", `{"bundle": `+string(bad)+`}`))
	if !errors.Is(err, gov.ErrInvalidProposal) || !strings.Contains(err.Error(), `action 0 (set_js_app): module endpoints/hello.js: js_function "hello" is not exported (MARKER)`) {
		t.Fatalf("refused bundle: %v", err)
	}
	e.pass(action("set_js_app", `{"bundle": `+testBundle+`}`))
	if len(seen) != 2 || !json.Valid([]byte(seen[1])) || !strings.Contains(seen[1], `"endpoints/hello.js"`) {
		t.Fatalf("validator saw %q", seen)
	}
}
