// Package appauth authenticates requests to a JS application's endpoints
// with CCF's authentication policies, and builds the request.caller the
// application sees.
//
// An endpoint of a bundle lists its policies (app.json authn_policies):
//
//	"user_cert" | "member_cert" | "any_cert" | "jwt" | "user_cose_sign1" | "no_auth"
//	{"all_of": [<names>]}
//
// Authenticate tries them in order; the first that passes supplies the
// caller, in CCF's shapes (src/js/extensions/ccf/request.cpp):
//
//	user_cert, member_cert  {policy, id, data, cert}
//	any_cert                {policy, cert}
//	user_cose_sign1         {policy, id, data, cert, cose: {content}}
//	jwt                     {policy: "jwt", jwt: {keyIssuer, header, payload}}
//	no_auth                 {policy: "no_auth"}
//	all_of                  {policy: [names], <name>: <that policy's caller>}
//
// where id is the lowercase hex SHA-256 of the certificate's DER (the key
// of public:ccf.gov.users.certs or members.certs), data the user_data or
// member_data of the .info map (nil when there is none), cert the PEM, and
// content the COSE payload. An endpoint with no policies has no caller
// (nil). When every policy fails, the error is an *Error (401
// InvalidAuthenticationInfo) that names each policy and why it failed.
//
// Identities come from the governed state only (app.State): the users and
// members maps, and the JWT keys that set_jwt_public_signing_keys wrote in
// public:ccf.gov.jwt.public_signing_keys_metadata. Certificates are taken
// from r.TLS.PeerCertificates as presented, whoever issued them: the
// TLS layer need only ask for a client certificate, this package decides
// what it is worth.
package appauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
)

// Policy names, CCF's. The app bundle's metadata declares them
// (app.AuthnPolicy); this package checks them.
const (
	UserCert      = app.PolicyUserCert
	MemberCert    = app.PolicyMemberCert
	AnyCert       = app.PolicyAnyCert
	JWT           = app.PolicyJWT
	UserCOSESign1 = app.PolicyUserCOSESign1
	NoAuth        = app.PolicyNoAuth
)

// Policy is one entry of an endpoint's authn_policies (app.AuthnPolicy).
type Policy = app.AuthnPolicy

// ParsePolicies parses an endpoint's authn_policies (app.ParseAuthnPolicies).
func ParsePolicies(raw []json.RawMessage) ([]Policy, error) { return app.ParseAuthnPolicies(raw) }

// Error is an authentication failure. Code is CCF's for it
// (InvalidAuthenticationInfo); the HTTP edge answers it 401.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Authenticator checks requests against the governed identities.
type Authenticator struct {
	// State is the applied governance state.
	State app.State
	// Now is the clock for certificate validity and JWT nbf/exp; default
	// time.Now.
	Now func() time.Time
}

// failure is why one policy refused a request; other errors (reading the
// state) are the server's.
type failure struct{ msg string }

func (f *failure) Error() string { return f.msg }

func refuse(format string, args ...any) error { return &failure{fmt.Sprintf(format, args...)} }

// Authenticate tries policies in order and returns the caller of the
// first that passes. body is the request's body, already read (the COSE
// policy authenticates it). The error is an *Error when no policy passed,
// and something else when the state could not be read.
func (a *Authenticator) Authenticate(r *http.Request, body []byte, policies []Policy) (map[string]any, error) {
	if len(policies) == 0 {
		return nil, nil
	}
	var why []string
	for _, p := range policies {
		caller, err := a.try(r, body, p)
		if err == nil {
			return caller, nil
		}
		var f *failure
		if !errors.As(err, &f) {
			return nil, err
		}
		why = append(why, p.String()+": "+f.msg)
	}
	return nil, &Error{Code: "InvalidAuthenticationInfo",
		Message: "Invalid authentication credentials: " + strings.Join(why, "; ")}
}

func (a *Authenticator) try(r *http.Request, body []byte, p Policy) (map[string]any, error) {
	if p.AllOf == nil {
		return a.one(r, body, p.Name)
	}
	names := make([]any, len(p.AllOf))
	caller := map[string]any{"policy": names}
	for i, n := range p.AllOf {
		names[i] = n
		sub, err := a.one(r, body, n)
		if err != nil {
			return nil, err
		}
		caller[n] = sub
	}
	return caller, nil
}

func (a *Authenticator) one(r *http.Request, body []byte, name string) (map[string]any, error) {
	switch name {
	case UserCert:
		return a.certCaller(r, UserCert, govwire.MapUserCerts, govwire.MapUserInfo, "user_data", true)
	case MemberCert:
		return a.certCaller(r, MemberCert, govwire.MapMemberCerts, govwire.MapMemberInfo, "member_data", false)
	case AnyCert:
		return a.anyCert(r)
	case UserCOSESign1:
		return a.coseCaller(r, body)
	case JWT:
		return a.jwtCaller(r)
	case NoAuth:
		return map[string]any{"policy": NoAuth}, nil
	}
	return nil, refuse("unknown policy %q", name)
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// get reads a governed value; absent is ok == false, not an error.
func (a *Authenticator) get(m, key string) (v []byte, ok bool, err error) {
	v, err = a.State.GetKV(m, []byte(key))
	if errors.Is(err, log.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("appauth: reading %s: %w", m, err)
	}
	return v, true, nil
}

// infoData returns field (user_data or member_data) of id's record in
// the info map m, or nil.
func (a *Authenticator) infoData(m, id, field string) (any, error) {
	raw, ok, err := a.get(m, id)
	if err != nil || !ok {
		return nil, err
	}
	var info map[string]any
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("appauth: %s[%s] is not JSON: %w", m, id, err)
	}
	return info[field], nil
}
