package app_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

const minimalBundle = `{"metadata":{"endpoints":{"/x/{id}":{"get":{"js_module":"endpoints/x.js","js_function":"f",
"authn_policies":["user_cert",{"all_of":["user_cert","jwt"]}],"forwarding_required":"sometimes","mode":"readonly",
"redirection_strategy":"to_primary","openapi":{"responses":{}},"openapi_hidden":true,"interpreter_reuse":{"key":"k"},
"summary":"kept but ignored"}}}},
"modules":[{"name":"endpoints/x.js","module":"export function f() { return {}; }"}]}`

func TestParseBundle(t *testing.T) {
	b, err := app.ParseBundle([]byte(minimalBundle))
	if err != nil {
		t.Fatal(err)
	}
	info := b.Metadata.Endpoints["/x/{id}"]["get"]
	if len(info.AuthnPolicies) != 2 || info.AuthnPolicies[0].Name != "user_cert" ||
		!reflect.DeepEqual(info.AuthnPolicies[1].AllOf, []string{"user_cert", "jwt"}) ||
		info.RedirectionStrategy != "to_primary" || !info.OpenAPIHidden || info.InterpreterReuse.Key != "k" ||
		string(info.Extra["summary"]) != `"kept but ignored"` {
		t.Fatalf("parsed %+v", info)
	}
	// Re-marshalling gives a bundle that parses to the same thing.
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := app.ParseBundle(raw)
	if err != nil || !reflect.DeepEqual(b, b2) {
		t.Fatalf("round trip: %v\n%s", err, raw)
	}
	if _, err := app.Load(b, app.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestParseBundleErrors(t *testing.T) {
	for name, tc := range map[string]struct{ edit, want string }{
		"unknown method":  {`"get":{`, `endpoint "FETCH /x/{id}": unknown method "fetch"`},
		"upper method":    {`"GET":{`, `unknown method "GET"`},
		"mode":            {`"mode":"readonly"`, `mode "sometimes"`},
		"forwarding":      {`"forwarding_required":"sometimes"`, `forwarding_required "maybe"`},
		"redirection":     {`"redirection_strategy":"to_primary"`, `redirection_strategy "sideways"`},
		"policy":          {`["user_cert",`, `unknown authentication policy "root"`},
		"all_of":          {`{"all_of":["user_cert","jwt"]}`, `want a policy name or {"all_of": [names]}`},
		"missing module":  {`"js_module":"endpoints/x.js"`, `js_module "endpoints/y.js" is not a module of the bundle`},
		"dotdot":          {`"name":"endpoints/x.js"`, `modules[0] "../x.js"`},
		"absolute":        {`"name":"endpoints/x.js"`, `no leading /`},
		"unknown field":   {`"modules":[`, `unknown field "extra"`},
		"template":        {`"/x/{id}"`, `a parameter must fill the whole segment`},
		"no authn":        {`"authn_policies":["user_cert",{"all_of":["user_cert","jwt"]}],`, `authn_policies is missing`},
		"openapi":         {`"openapi":{"responses":{}}`, `openapi must be an object`},
		"trailing":        {`}]}`, `trailing data`},
		"js_module type":  {`"js_module":"endpoints/x.js"`, `cannot unmarshal number`},
		"duplicate param": {`"/x/{id}"`, `parameter "id" appears twice`},
	} {
		raw := minimalBundle
		switch name {
		case "unknown method":
			raw = strings.Replace(raw, tc.edit, `"fetch":{`, 1)
		case "upper method":
			raw = strings.Replace(raw, `"get":{`, tc.edit, 1)
		case "mode":
			raw = strings.Replace(raw, tc.edit, `"mode":"sometimes"`, 1)
		case "forwarding":
			raw = strings.Replace(raw, tc.edit, `"forwarding_required":"maybe"`, 1)
		case "redirection":
			raw = strings.Replace(raw, tc.edit, `"redirection_strategy":"sideways"`, 1)
		case "policy":
			raw = strings.Replace(raw, tc.edit, `["root",`, 1)
		case "all_of":
			raw = strings.Replace(raw, tc.edit, `{"all_of":[]}`, 1)
		case "missing module":
			raw = strings.Replace(raw, tc.edit, `"js_module":"endpoints/y.js"`, 1)
		case "dotdot":
			raw = strings.Replace(raw, tc.edit, `"name":"../x.js"`, 1)
		case "absolute":
			raw = strings.Replace(raw, tc.edit, `"name":"/endpoints/x.js"`, 1)
		case "unknown field":
			raw = strings.Replace(raw, tc.edit, `"extra":1,"modules":[`, 1)
		case "template":
			raw = strings.Replace(raw, tc.edit, `"/x/a{id}"`, 1)
		case "no authn":
			raw = strings.Replace(raw, tc.edit, ``, 1)
		case "openapi":
			raw = strings.Replace(raw, tc.edit, `"openapi":[1]`, 1)
		case "trailing":
			raw = raw + "{}"
		case "js_module type":
			raw = strings.Replace(raw, tc.edit, `"js_module":5`, 1)
		case "duplicate param":
			raw = strings.Replace(raw, tc.edit, `"/x/{id}/{id}"`, 1)
		}
		_, err := app.ParseBundle([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := app.ParseBundle(make([]byte, app.MaxBundleBytes+1)); err == nil {
		t.Error("oversized bundle accepted")
	}
}

func TestLoadErrorsNameTheEndpoint(t *testing.T) {
	for name, tc := range map[string]struct{ fn, src, want string }{
		"missing export": {"transfer", `export function balance() {}`,
			`app: endpoint "POST /transfer/{account_name}": module "endpoints/banking.js" does not export "transfer"`},
		"not a function": {"transfer", `export const transfer = 1;`,
			`app: endpoint "POST /transfer/{account_name}": export "transfer" of module "endpoints/banking.js" is not a function`},
		"syntax": {"transfer", `export function transfer( {`, `endpoints/banking.js:1:`},
		"top-level throw": {"transfer", `throw new Error("no"); export function transfer() {}`,
			`app: module "endpoints/banking.js": top-level code failed`},
	} {
		b := &app.Bundle{
			Metadata: app.Metadata{Endpoints: map[string]map[string]*app.EndpointInfo{"/transfer/{account_name}": {"post": {
				JSModule: "endpoints/banking.js", JSFunction: tc.fn, AuthnPolicies: []app.AuthnPolicy{{Name: "user_cert"}},
				ForwardingRequired: "always", Mode: "readwrite"}}}},
			Modules: []app.Module{{Name: "endpoints/banking.js", Module: tc.src}},
		}
		_, err := app.Load(b, app.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", name, err, tc.want)
		}
	}
}

func TestBuildBundleSample(t *testing.T) {
	b, err := app.BuildBundle("../../samples/banking")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Modules) != 1 || b.Modules[0].Name != "endpoints/banking.js" || len(b.Metadata.Endpoints) != 5 {
		t.Fatalf("%+v", b)
	}
	raw, _ := json.Marshal(b)
	if _, err := app.ParseBundle(raw); err != nil {
		t.Fatal(err)
	}
}

func TestMatch(t *testing.T) {
	mk := func(fn string) *app.EndpointInfo { return ep(fn, "readonly") }
	b := &app.Bundle{
		Metadata: app.Metadata{Endpoints: map[string]map[string]*app.EndpointInfo{
			"/a/{x}":     {"get": mk("f"), "post": mk("f")},
			"/a/b":       {"get": mk("f")},
			"/a/{x}/{y}": {"get": mk("f")},
			"/a/b/{y}":   {"get": mk("f")},
			"/{p}/b/c":   {"get": mk("f")},
			"/":          {"get": mk("f")},
		}},
		Modules: []app.Module{{Name: "endpoints/main.js", Module: "export function f() { return {}; }"}},
	}
	a, err := app.Load(b, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, tmpl string
		params             map[string]string
	}{
		{"GET", "/a/b", "/a/b", map[string]string{}},
		{"GET", "/a/z", "/a/{x}", map[string]string{"x": "z"}},
		{"POST", "/a/b", "/a/{x}", map[string]string{"x": "b"}}, // the literal has no POST
		{"get", "/a/b/c", "/a/b/{y}", map[string]string{"y": "c"}},
		{"GET", "/a/q/c", "/a/{x}/{y}", map[string]string{"x": "q", "y": "c"}},
		{"GET", "/z/b/c", "/{p}/b/c", map[string]string{"p": "z"}},
		{"GET", "/", "/", map[string]string{}},
	} {
		e, params, ok := a.Match(tc.method, tc.path)
		if !ok || e.Template != tc.tmpl || !reflect.DeepEqual(params, tc.params) {
			t.Errorf("%s %s: %v %v %v, want %s %v", tc.method, tc.path, e, params, ok, tc.tmpl, tc.params)
		}
	}
	if _, _, ok := a.Match("DELETE", "/a/b"); ok {
		t.Error("DELETE matched")
	}
	if m := a.Methods("/a/b"); !reflect.DeepEqual(m, []string{"GET", "POST"}) {
		t.Errorf("Methods = %v (405 with Allow)", m)
	}
	if m := a.Methods("/nope"); len(m) != 0 {
		t.Errorf("Methods = %v (404)", m)
	}
	if _, _, ok := a.Match("GET", "/a/"); ok {
		t.Error("an empty segment matched a parameter")
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(minimalBundle))
	f.Add([]byte(`{"metadata":{"endpoints":{}},"modules":[]}`))
	f.Add([]byte(`{"metadata":{"endpoints":{"/":{"get":{"js_module":"a.js","js_function":"f","authn_policies":[],"forwarding_required":"never","mode":"readwrite"}}}},"modules":[{"name":"a.js","module":""}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := app.ParseBundle(raw)
		if err != nil {
			return
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		b2, err := app.ParseBundle(again)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(b, b2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", b, b2)
		}
	})
}

// TestCheckBundle: what a set_js_app proposal is checked with refuses a
// bundle that does not parse and one whose endpoint's module lacks its
// function, and accepts a good one.
func TestCheckBundle(t *testing.T) {
	if err := app.CheckBundle([]byte(minimalBundle)); err != nil {
		t.Fatalf("a good bundle: %v", err)
	}
	if err := app.CheckBundle([]byte(`{"metadata":{}`)); err == nil {
		t.Fatal("a bundle that is not JSON passed")
	}
	noExport := strings.Replace(minimalBundle, "export function f()", "export function g()", 1)
	if err := app.CheckBundle([]byte(noExport)); err == nil || !strings.Contains(err.Error(), `"f"`) {
		t.Fatalf("an endpoint whose module does not export its function: %v", err)
	}
}
