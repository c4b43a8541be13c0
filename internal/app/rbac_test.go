package app_test

import (
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// The decentralized RBAC sample (samples/decentralized-rbac), run as the
// sample's test/test.sh runs it against a sandbox: members define roles and
// assign them, users ask whether a user may perform an action.

const rbacUnauthorized = `{"content":null,"error":{"errorMessage":"Unauthorized","errorType":"Unauthorized"},"success":false,"failure":true,"statusCode":401,"status":"Error"}`

type rbacEnv struct {
	app *app.App
	s   *memState
}

func loadRBAC(t testing.TB) *rbacEnv {
	t.Helper()
	b, err := app.BuildBundle("../../samples/decentralized-rbac")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Load(b, app.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemState()
	for _, u := range []string{"user0", "user1"} {
		s.put("public:ccf.gov.users.certs", []byte(id(u)), []byte("PEM of "+u))
	}
	// member0 is Active; member1 was added by governance but has not acked
	// (CCF's "Accepted"); member2 has a cert but no info record.
	for m, info := range map[string]string{"member0": `{"status":"Active","member_data":null}`, "member1": `{"status":"Accepted"}`, "member2": ""} {
		s.put("public:ccf.gov.members.certs", []byte(id(m)), []byte("PEM of "+m))
		if info != "" {
			s.put("public:ccf.gov.members.info", []byte(id(m)), []byte(info))
		}
	}
	return &rbacEnv{app: a, s: s}
}

func (e *rbacEnv) do(t *testing.T, method, path string, caller any) callResult {
	t.Helper()
	return do(t, e.app, e.s, method, path, "", nil, caller)
}

func (e *rbacEnv) kv(t *testing.T, m, k string) string {
	t.Helper()
	v, err := e.s.GetKV(m, []byte(k))
	if err != nil {
		t.Fatalf("%s[%s]: %v", m, k, err)
	}
	return string(v)
}

func TestRBACSample(t *testing.T) {
	e := loadRBAC(t)
	member0 := certCaller("member_cert", "member0")
	user0, user1 := certCaller("user_cert", "user0"), certCaller("user_cert", "user1")
	u0, u1 := id("user0"), id("user1")
	// test.sh's unknown user id.
	unknown := "44299711a41fa2d0745e2a76751219342757136e814a7dcf3256e4e650644b0a"

	// test.sh, in its order.
	r := e.do(t, "PUT", "/user_admin/roles/manage_users", member0)
	want(t, "create role user_admin", r, 200, "Ok")
	if r.res.Headers["content-type"] != "text/html" {
		t.Fatalf("create role: content-type %q", r.res.Headers["content-type"])
	}
	want(t, "assign user0", e.do(t, "PUT", "/"+u0+"/users/user_admin", member0), 200, "Ok")
	r = e.do(t, "GET", "/"+u0+"/action/manage_users", user0)
	want(t, "authz user0 manage_users", r, 200, `{"allowed":true}`)
	if r.res.Headers["content-type"] != "application/json" || !r.res.ReadOnly || r.res.WriteSet != nil {
		t.Fatalf("authz result: %+v", r.res)
	}
	want(t, "create role contributor", e.do(t, "PUT", "/contributor/roles/readwrite", member0), 200, "Ok")
	want(t, "assign user1", e.do(t, "PUT", "/"+u1+"/users/contributor", member0), 200, "Ok")
	want(t, "authz user1 readwrite", e.do(t, "GET", "/"+u1+"/action/readwrite", user1), 200, `{"allowed":true}`)
	want(t, "authz unknown user", e.do(t, "GET", "/"+unknown+"/action/reader", user0), 400, `{"allowed":false}`)
	want(t, "authz user1 reader", e.do(t, "GET", "/"+u1+"/action/reader", user1), 400, `{"allowed":false}`)

	// Any registered user may ask about any user.
	want(t, "user1 asks about user0", e.do(t, "GET", "/"+u0+"/action/manage_users", user1), 200, `{"allowed":true}`)
	want(t, "user0 asks about user1's other action", e.do(t, "GET", "/"+u1+"/action/manage_users", user0), 400, `{"allowed":false}`)

	// Roles and actions are stored lower case; checks ignore case; the
	// user's role is stored as given and lower-cased at check time.
	want(t, "create role Auditor", e.do(t, "PUT", "/Auditor/roles/Read_Logs", member0), 200, "Ok")
	want(t, "assign user1 AUDITOR", e.do(t, "PUT", "/"+u1+"/users/AUDITOR", member0), 200, "Ok")
	want(t, "authz READ_LOGS", e.do(t, "GET", "/"+u1+"/action/READ_LOGS", user1), 200, `{"allowed":true}`)
	want(t, "authz old role's action", e.do(t, "GET", "/"+u1+"/action/readwrite", user1), 400, `{"allowed":false}`)
	// A role that was never defined allows nothing.
	want(t, "assign user1 ghost", e.do(t, "PUT", "/"+u1+"/users/ghost", member0), 200, "Ok")
	want(t, "authz undefined role", e.do(t, "GET", "/"+u1+"/action/ghost", user1), 400, `{"allowed":false}`)
	want(t, "assign user1 contributor again", e.do(t, "PUT", "/"+u1+"/users/contributor", member0), 200, "Ok")

	// KV contents.
	for k, v := range map[string]string{"user_admin": "manage_users", "contributor": "readwrite", "auditor": "read_logs"} {
		if got := e.kv(t, "public:rbac.roles", k); got != v {
			t.Fatalf("public:rbac.roles[%s] = %q, want %q", k, got, v)
		}
	}
	if _, err := e.s.GetKV("public:rbac.roles", []byte("Auditor")); err == nil {
		t.Fatal("a role was stored with its original case")
	}
	if got := e.kv(t, "public:rbac.users", u0); got != "user_admin" {
		t.Fatalf("public:rbac.users[user0] = %q", got)
	}
	if got := e.kv(t, "public:rbac.users", u1); got != "contributor" {
		t.Fatalf("public:rbac.users[user1] = %q", got)
	}
	if n := len(e.s.maps["public:rbac.roles"]); n != 3 {
		t.Fatalf("public:rbac.roles has %d keys", n)
	}
	if n := len(e.s.maps["public:rbac.users"]); n != 2 {
		t.Fatalf("public:rbac.users has %d keys", n)
	}
}

func TestRBACAuthentication(t *testing.T) {
	e := loadRBAC(t)
	writes := []string{"/admin/roles/everything", "/" + id("user0") + "/users/admin"}
	for name, caller := range map[string]any{
		"accepted (not active) member": certCaller("member_cert", "member1"),
		"member without info":          certCaller("member_cert", "member2"),
		"unknown member":               certCaller("member_cert", "member9"),
		"user cert on member endpoint": certCaller("user_cert", "user0"),
		"no caller":                    nil,
		"jwt caller":                   map[string]any{"policy": "jwt", "jwt": map[string]any{"payload": map[string]any{"sub": id("member0")}}},
	} {
		for _, p := range writes {
			r := e.do(t, "PUT", p, caller)
			want(t, name+" PUT "+p, r, 401, rbacUnauthorized)
			if r.res.WriteSet != nil {
				t.Fatalf("%s: a refused call wrote %+v", name, r.res.WriteSet)
			}
		}
	}
	if len(e.s.maps["public:rbac.roles"])+len(e.s.maps["public:rbac.users"]) != 0 {
		t.Fatal("a refused call changed the state")
	}

	want(t, "setup role", e.do(t, "PUT", "/admin/roles/everything", certCaller("member_cert", "member0")), 200, "Ok")
	want(t, "setup user", e.do(t, "PUT", "/"+id("user0")+"/users/admin", certCaller("member_cert", "member0")), 200, "Ok")
	for name, caller := range map[string]any{
		"removed user":                 certCaller("user_cert", "user9"),
		"member cert on user endpoint": certCaller("member_cert", "member0"),
		"no caller":                    nil,
	} {
		want(t, name, e.do(t, "GET", "/"+id("user0")+"/action/everything", caller), 401, rbacUnauthorized)
	}

	// The endpoint contract as CCF's app.json has it.
	for _, c := range []struct{ method, path, policy, fwd, mode string }{
		{"PUT", "/r/roles/a", "member_cert", "always", "readwrite"},
		{"PUT", "/u/users/r", "member_cert", "always", "readwrite"},
		{"GET", "/u/action/a", "user_cert", "never", "readonly"},
	} {
		ep, _, ok := e.app.Match(c.method, c.path)
		if !ok {
			t.Fatalf("%s %s: no endpoint", c.method, c.path)
		}
		if p := ep.Info.AuthnPolicies; len(p) != 1 || p[0].Name != c.policy || ep.Info.ForwardingRequired != c.fwd || ep.Info.Mode != c.mode {
			t.Fatalf("%s: %+v", ep.Name(), ep.Info)
		}
	}
}
