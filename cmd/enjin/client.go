package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// client talks to the meta API of a running cloud.
type client struct {
	base  string
	token string
	hc    *http.Client
}

// clientFlags find the cloud: --api and $ENJIN_TOKEN, or the endpoints.json and admin token
// `enjin up` left in --state-dir.
type clientFlags struct {
	stateDir, api string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.stateDir, "state-dir", DefaultStateDir, "state directory of `enjin up` (endpoints.json)")
	fs.StringVar(&f.api, "api", os.Getenv("ENJIN_API"), "meta API URL (default $ENJIN_API, else from --state-dir)")
}

func (f *clientFlags) client() (*client, error) {
	c := &client{base: strings.TrimRight(f.api, "/"), token: os.Getenv("ENJIN_TOKEN"), hc: &http.Client{Timeout: 30 * time.Second}}
	if c.base != "" && c.token != "" {
		return c, nil
	}
	b, err := os.ReadFile(filepath.Join(f.stateDir, "endpoints.json"))
	if err != nil {
		return nil, fmt.Errorf("no cloud found: give --api and $ENJIN_TOKEN, or run `enjin up` (no %s)", filepath.Join(f.stateDir, "endpoints.json"))
	}
	var ep Endpoints
	if err := json.Unmarshal(b, &ep); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(f.stateDir, "endpoints.json"), err)
	}
	if c.base == "" {
		c.base = ep.API
	}
	if c.token == "" {
		tok, err := os.ReadFile(ep.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		c.token = strings.TrimSpace(string(tok))
	}
	return c, nil
}

// send sends a request with the client's credential and returns the response, whose body
// the caller closes; an API error becomes one line. hc nil means the client's own (which
// times out); streams pass a client without a timeout.
func (c *client) send(ctx context.Context, hc *http.Client, method, path string, hdr http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if hc == nil {
		hc = c.hc
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct{ Error string }
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s (%d)", method, path, e.Error, resp.StatusCode)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

// do sends in as JSON and decodes a JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, hdr http.Header, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
		hdr = hdr.Clone()
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, nil, method, path, hdr, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("o", "table", "output: table or json")
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return usageError{fmt.Sprintf("-o %q: want table or json", o)}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdNodes(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	out := outputFlag(fs)
	ring := fs.String("ring", "", "only nodes of this ring (0, 1, 2)")
	state := fs.String("state", "", "only nodes in this state (unknown, up, suspect, down)")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *ring != "" {
		q.Set("ring", *ring)
	}
	if *state != "" {
		q.Set("state", *state)
	}
	var resp struct {
		Nodes []struct {
			ID          string     `json:"id"`
			Ring        int        `json:"ring"`
			Label       string     `json:"label"`
			Supervision string     `json:"supervision_strategy"`
			State       string     `json:"state"`
			LastSeq     uint64     `json:"last_seq"`
			LastObsAt   *time.Time `json:"last_observation_at"`
		} `json:"nodes"`
	}
	var raw json.RawMessage
	if _, err := c.do(ctx, "GET", "/v1/nodes?"+q.Encode(), nil, nil, &raw); err != nil {
		return err
	}
	if *out == "json" {
		_, err := stdout.Write(append(raw, '\n'))
		return err
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-24s %-4s %-8s %-10s %-21s %s\n", "ID", "RING", "STATE", "STRATEGY", "LAST SEEN", "LABEL")
	for _, n := range resp.Nodes {
		seen := "never"
		if n.LastObsAt != nil {
			seen = n.LastObsAt.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(stdout, "%-24s %-4d %-8s %-10s %-21s %s\n", n.ID, n.Ring, n.State, n.Supervision, seen, n.Label)
	}
	return nil
}

func cmdCreds(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, "usage: enjin creds ops [--name NAME] [--out FILE]\n\n  ops  write a .creds file for the nats CLI: subscribe ops.>, publish nothing")
		return nil
	}
	if args[0] != "ops" {
		return usageError{fmt.Sprintf("creds: unknown kind %q (try enjin creds --help)", args[0])}
	}
	fs := flag.NewFlagSet("creds ops", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	name := fs.String("name", "ops", "operator name (a slug)")
	outPath := fs.String("out", "ops.creds", "file to write (mode 0600)")
	if help, err := parseFlags(fs, args[1:], stdout); help || err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var resp struct {
		Creds string `json:"creds"`
	}
	if _, err := c.do(ctx, "POST", "/v1/creds/ops", nil, map[string]string{"name": *name}, &resp); err != nil {
		return err
	}
	if resp.Creds == "" {
		return errors.New("creds ops: empty answer")
	}
	if err := os.WriteFile(*outPath, []byte(resp.Creds), 0o600); err != nil {
		return err
	}
	if err := os.Chmod(*outPath, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s; watch with: nats --creds %s -s <nats url> sub 'ops.>'\n", *outPath, *outPath)
	return nil
}
