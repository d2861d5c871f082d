package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"enjin"
	"enjin/keys"
	"enjin/rings/ring1"
)

// joinMode checks the join flags: a token comes from a file or stdin, never from the command
// line, where other users can read it (/proc/<pid>/cmdline).
func joinMode(o enjin.Ring1Options) (joining bool, err error) {
	switch {
	case o.Join != "" && o.Join != "-":
		return false, usagef("ring1: --join takes no token: others can read a command line; " +
			"give --join-file FILE, or --join - with the token on stdin")
	case o.Join != "" && o.JoinFile != "":
		return false, usagef("ring1: give --join - or --join-file, not both")
	case (o.Join != "" || o.JoinFile != "") && o.Ring0 == "":
		return false, usagef("ring1: joining needs --ring0 URL")
	}
	return o.Join != "" || o.JoinFile != "", nil
}

// joinToken reads the one-time token from file, or from stdin if join is "-": either the
// token alone on the first line, or the API's answer that made it ({"token": …}, as saved by
// curl -o).
func joinToken(join, file string, stdin io.Reader) (string, error) {
	what := "--join-file " + file
	var b []byte
	var err error
	if join == "-" {
		what = "--join -"
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<10))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("ring1: %s: %w", what, err)
	}
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "{") {
		var answer struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(text), &answer); err != nil || answer.Token == "" {
			return "", fmt.Errorf("ring1: %s: JSON without a \"token\"", what)
		}
		return answer.Token, nil
	}
	line, _, _ := strings.Cut(text, "\n")
	if tok := strings.TrimSpace(line); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("ring1: %s: no token", what)
}

// joinedNode is what a joined node remembers besides its keys.
type joinedNode struct {
	Node    enjin.NodeID `json:"node"`
	NATS    string       `json:"nats"`
	Servers []string     `json:"servers,omitempty"` // every ring 0 member's broker
	Ring0   string       `json:"ring0,omitempty"`   // the API it joined through
}

// joinNow redeems the token with ring 0 and keeps the node's keys and identity in dir.
func joinNow(ctx context.Context, w io.Writer, ring0URL, token, dir string) (ring1.Config, error) {
	cfg, err := ring1.Join(ctx, ring0URL, token, dir, nil)
	if err != nil {
		return cfg, err
	}
	b, _ := json.Marshal(joinedNode{Node: cfg.Node, NATS: cfg.NATSURL, Servers: cfg.NATSServers, Ring0: ring0URL})
	if err := keys.WriteCreds(filepath.Join(dir, "node.json"), b); err != nil {
		return cfg, err
	}
	fmt.Fprintf(w, "joined as %s; keys in %s\n", cfg.Node, dir)
	cfg.CredsPath, cfg.Dir, cfg.Ring0API = filepath.Join(dir, ring1.CredsFile), dir, ring0URL
	return cfg, nil
}

func loadJoined(dir string) (ring1.Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if err != nil {
		return ring1.Config{}, err
	}
	var j joinedNode
	if err := json.Unmarshal(b, &j); err != nil {
		return ring1.Config{}, fmt.Errorf("%s: %w", filepath.Join(dir, "node.json"), err)
	}
	c, err := keys.LoadCreds(filepath.Join(dir, ring1.CredsFile))
	if err != nil {
		return ring1.Config{}, err
	}
	a, err := keys.LoadAttestation(filepath.Join(dir, ring1.AttestFile))
	if err != nil {
		return ring1.Config{}, err
	}
	ca, err := os.ReadFile(filepath.Join(dir, ring1.CAFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // none: joined a ring 0 from before TLS
		return ring1.Config{}, err
	}
	return ring1.Config{Node: j.Node, NATSURL: j.NATS, NATSServers: j.Servers, Creds: c, Attestation: a,
		CredsPath: filepath.Join(dir, ring1.CredsFile), Dir: dir, Ring0API: j.Ring0, CA: ca}, nil
}
