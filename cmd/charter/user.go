package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/charterlog/charter/internal/govwire"
)

func init() {
	register(command{name: "user add", summary: "propose a user (set_user) and vote for it", run: runUserAdd})
	register(command{name: "user remove", summary: "propose removing a user (remove_user) and vote for it", run: runUserRemove})
}

func runUserAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("user add", "--cert USER.pem [--data JSON|@FILE]  (and --url --cacert --member-key --member-cert)", stderr)
	var g govFlags
	g.add(fs, true)
	certFile := fs.String("cert", "", "the user's certificate (PEM)")
	data := fs.String("data", "", "the user's user_data, JSON or @FILE (optional)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("unexpected arguments %q: the certificate goes in --cert", fs.Args())
	}
	if *certFile == "" {
		return usageError("--cert is required (the new user's certificate, PEM)")
	}
	cert, err := readCertFile(*certFile, "--cert")
	if err != nil {
		return err
	}
	pemText, err := os.ReadFile(*certFile)
	if err != nil {
		return err
	}
	a := map[string]any{"cert": string(pemText)}
	if *data != "" {
		raw, err := jsonArg("--data", *data)
		if err != nil {
			return err
		}
		a["user_data"] = raw
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "user %s\n", govwire.MemberIDOf(cert))
	return proposeAndVote(ctx, c, stdout, action("set_user", a))
}

var userIDPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func runUserRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("user remove", "--cert USER.pem | --id USER_ID  (and --url --cacert --member-key --member-cert)", stderr)
	var g govFlags
	g.add(fs, true)
	certFile := fs.String("cert", "", "the user's certificate (PEM)")
	id := fs.String("id", "", "the user's id (64 lowercase hex digits)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	switch {
	case *certFile != "" && *id == "":
		cert, err := readCertFile(*certFile, "--cert")
		if err != nil {
			return err
		}
		*id = govwire.MemberIDOf(cert)
	case *id != "" && *certFile == "":
		if !userIDPattern.MatchString(*id) {
			return usageError("--id %q is not a user id: want the 64 lowercase hex digits of the SHA-256 of the certificate's DER", *id)
		}
	default:
		return usageError("give the user as --cert or --id, one of them")
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "user %s\n", *id)
	return proposeAndVote(ctx, c, stdout, action("remove_user", map[string]any{"user_id": *id}))
}

// jsonArg reads a flag's value as JSON text, or as a file with @FILE.
func jsonArg(name, v string) (json.RawMessage, error) {
	raw := []byte(v)
	if len(v) > 0 && v[0] == '@' {
		b, err := os.ReadFile(v[1:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, usageError("%s is not valid JSON (quote a string: '\"text\"')", name)
	}
	return raw, nil
}

func action(name string, args any) govwire.Action {
	b, err := json.Marshal(args)
	if err != nil {
		panic(err) // args are built here from JSON-able values
	}
	return govwire.Action{Name: name, Args: b}
}

// proposeAndVote proposes actions as c's member, votes for the proposal
// if it is still open, and prints its id and state.
func proposeAndVote(ctx context.Context, c *govClient, stdout io.Writer, actions ...govwire.Action) error {
	payload, err := json.Marshal(govwire.Proposal{Actions: actions})
	if err != nil {
		return err
	}
	out, err := c.send(ctx, "/gov/members/proposals:create", govwire.MsgProposal, "", payload)
	if err != nil {
		return fmt.Errorf("proposing %s: %w", actions[0].Name, err)
	}
	id, _ := out["proposalId"].(string)
	state, _ := out["proposalState"].(string)
	if id == "" {
		return fmt.Errorf("the service answered the proposal without a proposalId: %v", out)
	}
	if state == govwire.StateOpen {
		ballot, _ := json.Marshal(govwire.Ballot{Ballot: "export function vote(proposal, proposerId) { return true }"})
		out, err = c.send(ctx, "/gov/members/proposals/"+id+"/ballots/"+c.id+":submit", govwire.MsgBallot, id, ballot)
		if err != nil {
			return fmt.Errorf("proposal %s is open, but voting for it failed: %w", id, err)
		}
		state, _ = out["proposalState"].(string)
	}
	fmt.Fprintf(stdout, "proposal %s %s\n", id, state)
	if f, ok := out["failure"].(map[string]any); ok {
		fmt.Fprintf(stdout, "failure: %v\n", f["reason"])
	}
	switch state {
	case govwire.StateAccepted, govwire.StateOpen:
		return nil
	}
	return fmt.Errorf("proposal %s is %s", id, state)
}
