package govwire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Payload shapes, as CCF's classic governance API defines them. The JSON
// decoding is stricter than encoding/json's default: keys must match
// exactly (encoding/json would fold "Actions" into actions, which the JS
// constitution, reading the same bytes, would not), unknown and duplicated
// keys are refused, and nothing may follow the value.

// Action is one step of a proposal: a constitution action name and its
// arguments (a JSON object, or absent).
type Action struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Proposal is the payload of a proposal: {"actions": [...]}.
type Proposal struct {
	Actions []Action `json:"actions"`
}

// Ballot is the payload of a ballot: {"ballot": "<JS source>"}, a module
// whose vote(proposal, proposerId) function returns true or false.
type Ballot struct {
	Ballot string `json:"ballot"`
}

// Ack is the payload of an ack: {"state_digest": "<hex>"}, the digest the
// member was given by a state_digest request (CCF 7's clients send
// {"stateDigest": "<hex>"}, which Request.Ack reads too).
type Ack struct {
	StateDigest string `json:"state_digest"`
}

// Limits on proposals. CCF's constitutions loop over actions in JS; the
// bounds keep one proposal's validation cheap and its audit readable.
const (
	MaxActions       = 64
	MaxActionNameLen = 100
)

// Proposal decodes r's payload as a proposal. It returns ErrWrongType if r
// is not a proposal and ErrMalformed unless the payload is exactly
// {"actions": [...]} with 1..MaxActions actions, each {"name", "args"?}
// with a non-empty name of at most MaxActionNameLen bytes and args a JSON
// object when present.
func (r *Request) Proposal() (*Proposal, error) {
	if err := r.wantType(MsgProposal); err != nil {
		return nil, err
	}
	top, err := strictObject(r.Payload, "actions")
	if err != nil {
		return nil, malformed("proposal: %v", err)
	}
	rawActions, ok := top["actions"]
	if !ok {
		return nil, malformed("proposal: missing actions")
	}
	var elems []json.RawMessage
	if err := decodeJSONKind(rawActions, '[', &elems); err != nil {
		return nil, malformed("proposal: actions: %v", err)
	}
	if len(elems) == 0 || len(elems) > MaxActions {
		return nil, malformed("proposal: %d actions, want 1..%d", len(elems), MaxActions)
	}
	p := &Proposal{Actions: make([]Action, 0, len(elems))}
	for i, e := range elems {
		fields, err := strictObject(e, "name", "args")
		if err != nil {
			return nil, malformed("proposal: action %d: %v", i, err)
		}
		var a Action
		if err := decodeJSONKind(fields["name"], '"', &a.Name); err != nil {
			return nil, malformed("proposal: action %d: name: %v", i, err)
		}
		if a.Name == "" || len(a.Name) > MaxActionNameLen {
			return nil, malformed("proposal: action %d: name of %d bytes, want 1..%d", i, len(a.Name), MaxActionNameLen)
		}
		if args, ok := fields["args"]; ok {
			if firstByte(args) != '{' {
				return nil, malformed("proposal: action %d (%s): args is not a JSON object", i, a.Name)
			}
			a.Args = append(json.RawMessage(nil), args...)
		}
		p.Actions = append(p.Actions, a)
	}
	return p, nil
}

// Ballot decodes r's payload as {"ballot": "<non-empty JS source>"}.
func (r *Request) Ballot() (*Ballot, error) {
	if err := r.wantType(MsgBallot); err != nil {
		return nil, err
	}
	fields, err := strictObject(r.Payload, "ballot")
	if err != nil {
		return nil, malformed("ballot: %v", err)
	}
	var b Ballot
	if err := decodeJSONKind(fields["ballot"], '"', &b.Ballot); err != nil {
		return nil, malformed("ballot: ballot: %v", err)
	}
	if b.Ballot == "" {
		return nil, malformed("ballot: empty ballot script")
	}
	return &b, nil
}

// Ack decodes r's payload as {"state_digest": "<hex>"} (classic) or
// {"stateDigest": "<hex>"} (CCF 7). The digest must be
// 64 lowercase hex digits: a SHA-256, the size of the ledger's tree roots.
func (r *Request) Ack() (*Ack, error) {
	if err := r.wantType(MsgAck); err != nil {
		return nil, err
	}
	// CCF's classic API names the digest state_digest, CCF 7's
	// (2024-07-01) stateDigest; an ack carries exactly one of them.
	fields, err := strictObject(r.Payload, "state_digest", "stateDigest")
	if err != nil {
		return nil, malformed("ack: %v", err)
	}
	key := "state_digest"
	if _, ok := fields["stateDigest"]; ok {
		key = "stateDigest"
		if _, both := fields["state_digest"]; both {
			return nil, malformed("ack: both state_digest and stateDigest")
		}
	}
	var a Ack
	if err := decodeJSONKind(fields[key], '"', &a.StateDigest); err != nil {
		return nil, malformed("ack: %s: %v", key, err)
	}
	d, err := hex.DecodeString(a.StateDigest)
	if err != nil || len(d) != 32 || hex.EncodeToString(d) != a.StateDigest {
		return nil, malformed("ack: state_digest %q is not 64 lowercase hex digits", a.StateDigest)
	}
	return &a, nil
}

// RecoveryShare decodes r's payload as CCF's {"share": "<base64>"}: a
// recovery member's decrypted share, of exactly size bytes. The caller
// clears it once used: it is a secret in clear.
func (r *Request) RecoveryShare(size int) ([]byte, error) {
	if err := r.wantType(MsgRecoveryShare); err != nil {
		return nil, err
	}
	fields, err := strictObject(r.Payload, "share")
	if err != nil {
		return nil, malformed("recovery_share: %v", err)
	}
	var b64 string
	if err := decodeJSONKind(fields["share"], '"', &b64); err != nil {
		return nil, malformed("recovery_share: share: %v", err)
	}
	share, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(share) != size {
		clear(share)
		return nil, malformed("recovery_share: share must be the %d-byte decrypted share in base64", size)
	}
	return share, nil
}

func (r *Request) wantType(t MsgType) error {
	if r == nil {
		return malformed("nil request")
	}
	if r.Type != t {
		return fmt.Errorf("%w: request is a %s, not a %s", ErrWrongType, r.Type, t)
	}
	return nil
}

// checkEmptyPayload accepts an empty payload or a JSON object without
// members: what withdrawals and state_digest requests carry.
func checkEmptyPayload(p []byte) error {
	if len(bytes.TrimSpace(p)) == 0 {
		return nil
	}
	fields, err := strictObject(p)
	if err != nil {
		return err
	}
	if len(fields) != 0 {
		return errors.New("want an empty payload or {}")
	}
	return nil
}

// strictObject decodes data as one JSON object whose keys are among allowed
// (exact match), each at most once, with nothing after it. It returns the
// members raw; allowed keys that are absent are absent from the map.
func strictObject(data []byte, allowed ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("not JSON: object key is not a string")
		}
		known := false
		for _, a := range allowed {
			known = known || a == key
		}
		if !known {
			return nil, fmt.Errorf("unknown field %q", key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("duplicate field %q", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("field %q: %v", key, err)
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}

// decodeJSONKind decodes raw into v after checking that it starts with the
// given byte ('[' array, '"' string): null and other kinds are refused
// rather than left as Go zero values. A missing field (nil raw) is refused.
func decodeJSONKind(raw json.RawMessage, kind byte, v any) error {
	if raw == nil {
		return errors.New("missing")
	}
	if firstByte(raw) != kind {
		return fmt.Errorf("wrong JSON type, want %s", map[byte]string{'[': "an array", '"': "a string"}[kind])
	}
	return json.Unmarshal(raw, v)
}

func firstByte(raw json.RawMessage) byte {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return 0
	}
	return t[0]
}
