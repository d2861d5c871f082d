package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"enjin/keys"
)

// client talks to the meta API of a running cloud.
type client struct {
	base  string
	alts  []string // other ring 0 members' APIs, tried in order when base cannot be reached
	token string
	hc    *http.Client // for requests with an answer
	// stream is for requests that last as long as they must: a deploy, a followed log.
	stream *http.Client
	ca     string // the CA file ring 0's API is checked by when it speaks https
}

// Endpoints is what `enjin up` writes to <state>/endpoints.json once the cloud is ready;
// client commands read it.
type Endpoints struct {
	API             string   `json:"api"`
	NATS            string   `json:"nats"`
	APIs            []string `json:"apis"`      // every ring 0 member's API, this one's first: the CLI uses any that answers
	NATSURLs        []string `json:"nats_urls"` // every ring 0 member's broker
	AdminTokenFile  string   `json:"admin_token_file"`
	AdminHeaderFile string   `json:"admin_header_file"` // the token as an HTTP header, for curl -H @file
	OpsCreds        string   `json:"ops_creds"`
	Database        string   `json:"database"` // "managed" or "external"
	Ring1           string   `json:"ring1"`
	Router          string   `json:"router"`               // where apps are reached: Host <app>.<tenant>.<apps_domain>
	AppsDomain      string   `json:"apps_domain"`          // ditto
	RouterTLS       string   `json:"router_tls,omitempty"` // where apps' custom domains are reached over TLS
	DNS             string   `json:"dns"`                  // answers A for app names with the router's address
	CA              string   `json:"ca"`                   // the CA ring 0 serves TLS from beyond loopback (its certificate, PEM)
}

func readEndpoints(stateDir string) (Endpoints, error) {
	var ep Endpoints
	p := filepath.Join(stateDir, "endpoints.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return ep, err
	}
	if err := json.Unmarshal(b, &ep); err != nil {
		return ep, fmt.Errorf("%s: %w", p, err)
	}
	return ep, nil
}

// client finds the cloud: --api or $ENJIN_API, the token from --token-file or $ENJIN_TOKEN,
// and whatever is missing from the endpoints.json and admin token `enjin up` left in the
// state dir.
func (g *globals) client() (*client, error) {
	c := &client{base: g.api, token: os.Getenv("ENJIN_TOKEN"), ca: cmp.Or(g.caFile, os.Getenv("ENJIN_CA"))}
	if c.base == "" {
		c.base = os.Getenv("ENJIN_API")
	}
	if g.tokenFile != "" {
		tok, err := readToken(g.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		c.token = tok
	}
	if c.base == "" || c.token == "" {
		if err := c.fromStateDir(g.stateDir); err != nil {
			return nil, err
		}
	}
	c.base = strings.TrimRight(c.base, "/")
	t := http.DefaultTransport.(*http.Transport).Clone()
	if c.ca != "" {
		pem, name, err := []byte(c.ca), "$ENJIN_CA", error(nil)
		if !strings.HasPrefix(c.ca, "-----BEGIN ") { // a file's name; $ENJIN_CA may hold the PEM itself
			if pem, err = os.ReadFile(c.ca); err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			name = c.ca
		}
		// ring 0's certificate names keys.Ring0Name, whatever address it is reached at
		if t.TLSClientConfig, err = keys.ClientTLS(pem, keys.Ring0Name); err != nil {
			return nil, fmt.Errorf("--ca %s: %w", name, err)
		}
	}
	c.hc, c.stream = &http.Client{Timeout: 30 * time.Second, Transport: t}, &http.Client{Transport: t}
	return c, nil
}

func (c *client) fromStateDir(stateDir string) error {
	ep, err := readEndpoints(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no cloud found: give --api and $ENJIN_TOKEN (or --token-file), or run `enjin up` (no %s)",
			filepath.Join(stateDir, "endpoints.json"))
	}
	if err != nil {
		return err
	}
	if c.base == "" {
		c.base = ep.API
		for _, a := range ep.APIs {
			if a = strings.TrimRight(a, "/"); a != strings.TrimRight(ep.API, "/") && a != "" {
				c.alts = append(c.alts, a)
			}
		}
	}
	if c.ca == "" {
		c.ca = ep.CA
	}
	if c.token == "" {
		if c.token, err = readToken(ep.AdminTokenFile); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	return nil
}

// readToken reads a secret from the first line of a file.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if tok := strings.TrimSpace(line); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("%s is empty", path)
}

// apiError is the API's answer to a request it refused: {"error": …, "code": …, "field": …}.
type apiError struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
	Code   string `json:"code"`
	Field  string `json:"field"`
}

func (e *apiError) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
	}
	if e.Field != "" && !strings.Contains(strings.ToLower(msg), strings.ToLower(e.Field)) {
		msg = e.Field + ": " + msg
	}
	return fmt.Sprintf("%s (%d)", msg, e.Status)
}

func readAPIError(resp *http.Response) error {
	e := &apiError{}
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(e) // a body that is not JSON leaves the status
	e.Status = resp.StatusCode
	return e
}

// send sends a request with the client's credential and returns the response, whose body the
// caller closes; a refusal (status 300 and up) is an *apiError. hc nil means the client's own,
// which times out.
func (c *client) send(ctx context.Context, hc *http.Client, method, path string, hdr http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return c.sendRequest(req, hc)
}

// sendRequest is send for a request the caller made (to set its length, say).
func (c *client) sendRequest(req *http.Request, hc *http.Client) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	if hc == nil {
		hc = c.hc
	}
	resp, err := hc.Do(req)
	for len(c.alts) > 0 && unreachable(err) && (req.Body == nil || req.GetBody != nil) {
		// Nothing reached this member: another may answer. The body, if any, is sent again.
		next, rerr := c.retarget(req)
		if rerr != nil {
			break
		}
		req = next
		resp, err = hc.Do(req)
	}
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return nil, ue.Err // the caller says which request
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, readAPIError(resp)
	}
	return resp, nil
}

// unreachable reports whether err is a failure to connect at all: the request was not sent.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retarget makes the client use its next ring 0 member from now on and returns req aimed at
// it, with a fresh copy of its body.
func (c *client) retarget(req *http.Request) (*http.Request, error) {
	c.base, c.alts = c.alts[0], c.alts[1:]
	u, err := url.Parse(c.base)
	if err != nil {
		return nil, err
	}
	next := req.Clone(req.Context())
	next.URL.Scheme, next.URL.Host, next.Host = u.Scheme, u.Host, ""
	if req.GetBody != nil {
		if next.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// do sends in as JSON and decodes a JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
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
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// get decodes the answer to GET path into out.
func (c *client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, "GET", path, nil, nil, out)
}
