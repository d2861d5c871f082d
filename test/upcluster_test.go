package test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestUpRing0Cluster runs `enjin up --ring0 3`: three ring 0 members on the managed
// PostgreSQL, one leading, all listed in endpoints.json; a tenant made and an app deployed
// through the third member — which neither runs nor joined the ring 1 node — serve through
// the router.
func TestUpRing0Cluster(t *testing.T) {
	c := newCloud(t)
	c.args = append(c.args, "--ring0", "3")
	c.start()
	if len(c.ep.APIs) != 3 || len(c.ep.NATSURLs) != 3 || c.ep.APIs[0] != c.ep.API {
		t.Fatalf("endpoints: apis %v, nats_urls %v; want three each, this member's first", c.ep.APIs, c.ep.NATSURLs)
	}
	tok, err := os.ReadFile(c.ep.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	get := func(api, path string, out any) int {
		code, body := apiCall(t, api, strings.TrimSpace(string(tok)), "GET", path)
		if code == 200 {
			json.Unmarshal(body, out)
		}
		return code
	}
	harness.Eventually(t, 20*time.Second, func() bool {
		var ms struct{ Members []struct{ Member string } }
		leading := 0
		for _, api := range c.ep.APIs {
			var l struct{ Leading bool }
			if get(api, "/v1/leader", &l) != 200 {
				return false
			}
			if l.Leading {
				leading++
			}
		}
		return get(c.ep.APIs[2], "/v1/members", &ms) == 200 && len(ms.Members) == 3 && leading == 1
	}, "three members listed, one leading")

	out := c.cli("members")
	if strings.Count(out, "yes (epoch ") != 1 || !strings.Contains(out, "r0-a ") || !strings.Contains(out, "r0-b ") || !strings.Contains(out, "r0-c ") {
		t.Fatalf("enjin members: want r0-a, r0-b and r0-c, one leading:\n%s", out)
	}
	t.Logf("enjin members:\n%s", out)

	third := func(args ...string) string {
		cmd := exec.Command(harness.Binary(t), args...)
		cmd.Env = append(os.Environ(), "ENJIN_API="+c.ep.APIs[2], "ENJIN_TOKEN="+strings.TrimSpace(string(tok)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("enjin %v through the third member: %v\n%s", args, err, out)
		}
		return string(out)
	}
	third("tenants", "create", "acme")
	third("apps", "deploy", "acme/hello", c.sample, "-q")
	c.waitServing([]string{"acme/hello"})
	if out := c.cli("verify"); !strings.Contains(out, " 0 failed") {
		t.Fatalf("verify:\n%s", out)
	}
	t.Logf("3 members; a tenant and an app made through the third serve through the router")
}

// apiCall sends method path to the API at base with a bearer token and returns the answer.
func apiCall(t *testing.T, base, token, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
