package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// enjinIn runs a command line in this process, with stdin, and returns what it printed and
// its exit status.
func enjinIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(t.Context(), args, strings.NewReader(stdin), &o, &e)
	return o.String(), e.String(), code
}

// recorded is one request the fake API received.
type recorded struct {
	Method, Path, Query, Body string
	Header                    http.Header
}

// fakeAPI is an httptest server that records every request and answers with handler, or
// with {} when handler is nil.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFakeAPI(t *testing.T, handler http.HandlerFunc) *fakeAPI {
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Header.Clone()})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		if handler == nil {
			io.WriteString(w, "{}")
			return
		}
		handler(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// useAPI points client commands at api with a token, through the environment.
func useAPI(t *testing.T, api *fakeAPI) {
	t.Setenv("ENJIN_API", api.URL)
	t.Setenv("ENJIN_TOKEN", "test-token")
}

// fakeCloud writes the endpoints.json and admin token `enjin up` would.
func fakeCloud(t *testing.T, state, api, router string) {
	t.Helper()
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(state, "admin.token")
	os.WriteFile(tok, []byte("admin-secret\n"), 0o600)
	b, _ := json.Marshal(Endpoints{API: api, AdminTokenFile: tok, Router: router, AppsDomain: "apps.test"})
	if err := os.WriteFile(filepath.Join(state, "endpoints.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// appDir makes a directory to deploy: a Procfile and a program.
func appDir(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./app\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app"), []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755)
	return dir
}

// commands lists every command of the tree a user can call, by its path.
func commands() map[string]*cobra.Command {
	all := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		all[c.CommandPath()] = c
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&globals{}, nil, io.Discard, io.Discard))
	return all
}

func TestHelpOfEveryCommand(t *testing.T) {
	cs := commands()
	for _, want := range []string{"enjin up", "enjin ring1", "enjin apps deploy", "enjin apps env", "enjin tenants token",
		"enjin compartments delete", "enjin bench router", "enjin creds ops", "enjin logs", "enjin completion bash"} {
		if cs[want] == nil {
			t.Errorf("no command %q", want)
		}
	}
	for path, c := range cs {
		t.Run(path, func(t *testing.T) {
			args := append(strings.Fields(path)[1:], "--help")
			out, errOut, code := enjinIn(t, "", args...)
			if code != 0 || errOut != "" || !strings.Contains(out, "Usage:") {
				t.Fatalf("exit %d, stderr %q, stdout %q; want exit 0 and the help", code, errOut, out)
			}
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if !f.Hidden && !strings.Contains(out, "--"+f.Name) {
					t.Errorf("help does not mention --%s:\n%s", f.Name, out)
				}
			})
			if !strings.Contains(out, "--state-dir") {
				t.Errorf("help does not mention the global --state-dir")
			}
		})
	}
}

// TestHelpExamples checks that the help shows the README's usage.
func TestHelpExamples(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"enjin apps deploy /tmp/hello --tenant acme --name hello", "enjin apps scale acme/hello web=3", "enjin logs acme/hello -f"}},
		{[]string{"help", "apps"}, []string{"enjin apps deploy /tmp/hello --tenant acme --name hello", "enjin apps scale acme/hello web=3"}},
		{[]string{"apps", "--help"}, []string{"enjin apps deploy /tmp/hello --tenant acme --name hello", "enjin apps scale acme/hello web=3"}},
		{[]string{"apps", "deploy", "--help"}, []string{"enjin apps deploy /tmp/hello --tenant acme --name hello"}},
		{[]string{"apps", "scale", "--help"}, []string{"enjin apps scale acme/hello web=3"}},
		{[]string{"logs", "--help"}, []string{"enjin logs acme/hello -f"}},
		{[]string{"ring1", "--help"}, []string{"--join-file join.token", "--join - "}},
		{[]string{}, []string{"Use a cloud:", "Run a cloud:"}},
	} {
		out, errOut, code := enjinIn(t, "", tc.args...)
		for _, w := range tc.want {
			if code != 0 || errOut != "" || !strings.Contains(out, w) {
				t.Errorf("%v: exit %d, stderr %q; want %q in:\n%s", tc.args, code, errOut, w, out)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("ENJIN_DATABASE_URL", "")
	for _, args := range [][]string{
		{"bogus"},
		{"apps", "bogus"},
		{"help", "bogus"},
		{"help", "apps", "bogus"},
		{"tenants", "lss"},
		{"completion", "tcsh"},
		{"init", "--nope"},
		{"init", "--state-dir"},
		{"init", "extra"},
		{"nodes", "--ring"},
		{"nodes", "-o", "yaml"},
		{"apps", "ps", "-o", "text", "acme/hello"},
		{"bench", "nope"},
		{"bench", "verify", "-o", "yaml"},
		{"creds", "root"},
		{"compartments", "create", "--label", "x"},
		{"compartments", "delete"},
		{"compartments", "show", "a", "b"},
		{"tenants", "create"},
		{"tenants", "create", "Not A Slug"},
		{"apps", "deploy"},
		{"apps", "deploy", "acme"},
		{"apps", "deploy", "--tenant", "acme", "dir"},
		{"apps", "deploy", "--tenant", "acme", "--name", "hello", "a", "b"},
		{"apps", "ls"},
		{"apps", "ls", "acme", "--tenant", "other"},
		{"apps", "ps"},
		{"apps", "ps", "acme"},
		{"apps", "scale", "acme/hello"},
		{"apps", "scale", "acme/hello", "web"},
		{"apps", "scale", "acme/hello", "web=many"},
		{"apps", "rollback", "acme/hello", "latest"},
		{"apps", "env"},
		{"apps", "env", "acme/hello", "KEY"},
		{"apps", "env", "acme/hello", "=v"},
		{"apps", "env", "acme/hello", "A=1", "--unset", "A"},
		{"apps", "env", "acme/hello", "A=1", "--reveal"},
		{"apps", "destroy", "acme/hello", "now"},
		{"logs"},
		{"logs", "acme/hello", "acme/other"},
		{"logs", "-f"},
		{"verify", "extra"},
		{"ring0"},
		{"ring0", "--database-url", "postgres://x", "--ring1", "A.B"},
		{"ring1"},
		{"ring1", "--join", "abc", "--ring0", "http://127.0.0.1:1"},
		{"ring1", "--join", "-"},
		{"ring1", "--join", "-", "--join-file", "f", "--ring0", "http://127.0.0.1:1"},
		{"up", "--log-level", "loud"},
		{"version", "now"},
		{"ring0", "--database-url", "postgres://x", "--acme-directory", "http://acme.example.test/dir"},
		{"ring0", "--database-url", "postgres://x", "--acme-email", "ops@example.test"},
		{"ring0", "--database-url", "postgres://x", "--acme-directory", "https://acme.example.test/dir", "--acme-ca", "/nonexistent"},
		{"ring0", "--database-url", "postgres://x", "--acme-directory", "https://acme.example.test/dir", "--acme-email", "not an address"},
		{"domains", "add", "acme/web", "www.example.test"},
		{"domains", "add", "acme/web", "www.example.test", "--acme", "--cert", "c.pem", "--key", "k.pem"},
	} {
		_, errOut, code := enjinIn(t, "", args...)
		if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "enjin: ") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line", args, code, errOut)
		}
	}
}

func TestFailuresAreOneLine(t *testing.T) {
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		io.WriteString(w, `{"error":"a tenant may not list nodes","code":"forbidden"}`)
	})
	useAPI(t, api)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nodes"}, "enjin: GET /v1/nodes: a tenant may not list nodes (403)\n"},
		{[]string{"nodes", "--api", "http://127.0.0.1:1"}, "connection refused\n"},
		{[]string{"apps", "deploy", "acme/hello", "/nonexistent"}, "enjin: deploy acme/hello: /nonexistent has no Procfile\n"},
		{[]string{"tenants", "ls", "--token-file", "/nonexistent"}, "enjin: --token-file: open /nonexistent: no such file or directory\n"},
	} {
		_, errOut, code := enjinIn(t, "", tc.args...)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "enjin: ") || !strings.HasSuffix(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 and one line ending %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestFlagsAnywhere checks that flags before and after the arguments, and the global flags
// before or after the command, make the same requests.
func TestFlagsAnywhere(t *testing.T) {
	api := newFakeAPI(t, nil)
	t.Setenv("ENJIN_TOKEN", "test-token")
	dir := appDir(t)
	for _, forms := range [][][]string{
		{{"logs", "-f", "acme/hello", "--lines", "5"}, {"logs", "acme/hello", "--lines", "5", "-f"}, {"logs", "--lines=5", "acme/hello", "--follow"}},
		{{"apps", "ls", "-o", "json", "acme"}, {"apps", "ls", "acme", "-o", "json"}, {"apps", "ls", "--tenant", "acme", "-o", "json"}},
		{{"apps", "env", "--unset", "B", "acme/hello", "A=1"}, {"apps", "env", "acme/hello", "A=1", "--unset", "B"}},
		{{"apps", "scale", "-o", "json", "acme/hello", "web=3"}, {"apps", "scale", "acme/hello", "web=3", "-o", "json"}},
		{{"nodes", "--ring", "1", "-o", "json"}, {"nodes", "-o", "json", "--ring", "1"}},
		{{"apps", "deploy", "--tenant", "acme", "--name", "hello", dir, "-q"}, {"apps", "deploy", dir, "--tenant", "acme", "--name", "hello", "-q"},
			{"apps", "deploy", "-q", "acme/hello", dir}},
	} {
		var first []recorded
		for i, args := range forms {
			before := len(api.requests())
			for _, full := range [][]string{append([]string{"--api", api.URL}, args...), append(slices.Clone(args), "--api", api.URL)} {
				enjinIn(t, "", full...)
			}
			got := api.requests()[before:]
			for j := range got {
				got[j].Header = nil
			}
			if len(got) != 2 || got[0].Method != got[1].Method || got[0].Path != got[1].Path || got[0].Query != got[1].Query || got[0].Body != got[1].Body {
				t.Errorf("%q: --api before and after made %+v", args, got)
				continue
			}
			if i == 0 {
				first = got
			} else if got[0].Method != first[0].Method || got[0].Path != first[0].Path || got[0].Query != first[0].Query || got[0].Body != first[0].Body {
				t.Errorf("%q made %+v; %q made %+v", args, got[0], forms[0], first[0])
			}
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, errOut, code := enjinIn(t, "", "completion", shell)
		if code != 0 || errOut != "" || !strings.Contains(out, "enjin") || len(out) < 1000 {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes", shell, code, errOut, len(out))
		}
	}
	if out, _, _ := enjinIn(t, "", "completion", "bash"); !strings.Contains(out, "complete -o default -F __start_enjin enjin") {
		t.Errorf("completion bash registers no completion for enjin:\n%.500s", out)
	}
}
