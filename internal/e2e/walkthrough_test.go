package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// walkthroughCommands returns the shell commands of the README's
// walkthrough section: every line of every ```sh block, continuation lines
// joined, blocks that start a server or run the tests left out.
func walkthroughCommands(readme string) ([]string, error) {
	const heading = "## Five-minute walkthrough"
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		return nil, fmt.Errorf("README.md has no %q section", heading)
	}
	section := readme[i+1:]
	if j := strings.Index(section[len(heading):], "\n## "); j >= 0 {
		section = section[:len(heading)+j]
	}
	var cmds []string
	for {
		start := strings.Index(section, "```sh\n")
		if start < 0 {
			break
		}
		section = section[start+len("```sh\n"):]
		end := strings.Index(section, "```")
		if end < 0 {
			return nil, fmt.Errorf("unterminated ```sh block")
		}
		block := section[:end]
		section = section[end+3:]
		if strings.Contains(block, "make run") || strings.Contains(block, "make test") ||
			strings.Contains(block, "charterd") || strings.Contains(block, "go run") {
			continue
		}
		var cur string
		for _, l := range strings.Split(block, "\n") {
			if strings.HasSuffix(l, "\\") {
				cur += strings.TrimSuffix(l, "\\") + " "
				continue
			}
			l = strings.TrimSpace(cur + l)
			cur = ""
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			cmds = append(cmds, l)
		}
	}
	return cmds, nil
}

// TestREADMEWalkthrough runs the README walkthrough as written against a
// node whose data directory is ./.charter of the working directory, as
// with `make run`. Only the port differs, and the build line: the test
// links the binaries it built into ./bin instead of building from ./cmd.
func TestREADMEWalkthrough(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := walkthroughCommands(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	n := startNode(t, filepath.Join(work, ".charter"))

	const buildLine = "go build -o bin/ ./cmd/..."
	link := "mkdir -p bin && ln -sf " + shellQuote(charterCLI) + " " + shellQuote(charterd) + " bin/"
	seen := map[string]bool{}
	for _, c := range cmds {
		run := strings.ReplaceAll(c, "https://127.0.0.1:8000", n.URL)
		if run == buildLine {
			run = link
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", run)
		cmd.Dir = work
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("README command failed (%v):\n$ %s\n%s", err, c, out.String())
		}
		t.Logf("$ %s\n%s", c, out.String())
		fields := strings.Fields(c)
		switch {
		case len(fields) > 1 && fields[0] == "bin/charter":
			seen[fields[1]] = true
			if fields[1] == "verify" {
				okLines := 0
				for _, l := range lines(out.String()) {
					if strings.HasPrefix(l, "ok ") {
						okLines++
					}
					if strings.HasPrefix(l, "FAIL") {
						t.Errorf("charter verify printed %q", l)
					}
				}
				if okLines == 0 {
					t.Errorf("charter verify printed no ok lines:\n%s", out.String())
				}
			}
		case strings.HasSuffix(c, "/checkpoint"):
			seen["checkpoint"] = true
			cp, err := parseCheckpoint(out.Bytes())
			if err != nil {
				t.Errorf("curl /checkpoint: %v", err)
			} else if cp.Size == 0 {
				t.Errorf("curl /checkpoint: tree size 0 after a registration")
			}
		case strings.HasSuffix(c, "/node/health"):
			seen["health"] = true
			if !strings.Contains(out.String(), `"ok"`) {
				t.Errorf("curl /node/health: %s", out.String())
			}
		case c == buildLine:
			seen["build"] = true
		}
	}
	// The walkthrough still covers the whole flow: a README that lost a
	// step would otherwise pass by running less.
	for _, want := range []string{"build", "keygen", "sign", "register", "keys", "verify", "receipt", "checkpoint", "ledger", "health"} {
		if !seen[want] {
			t.Errorf("the README walkthrough has no %q step", want)
		}
	}
	for _, f := range []string{"publisher/key.pem", "publisher/chain.pem", "publisher/issuer.txt", "sbom.cose", "sbom.ts.cose", "service-keys.cbor"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("after the walkthrough: %v", err)
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
