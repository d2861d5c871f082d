package test

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"enjin/test/harness"
)

// checkRouter: a VM with two NICs routes a network to another. acme/gw is on "outer" and on
// "inner" and routes for inner (`--router inner`): an app on inner, and a VM made after the
// router, reach through it an app on outer that inner may reach by its rule set; without the
// router, inner reaches nothing beyond itself; a second router for inner is refused.
func (c *cloud) checkRouter(t *testing.T) {
	t.Helper()
	c.cli("networks", "create", "acme/inner", "--cidr4", "100.82.0.0/24")
	c.cli("networks", "create", "acme/outer", "--cidr4", "100.83.0.0/24")
	c.cli("rulesets", "create", "acme/from-inner", "--rule", "in tcp 8080 from net:inner accept")
	c.deployProbe("acme/srv", `{"health":"/healthz","networks":[{"name":"outer","rulesets":["from-inner"]}]}`)
	c.deployProbe("acme/cli", `{"health":"/healthz","networks":["inner"]}`)
	srv := c.netAddrs("acme/srv", "outer")[0]
	if code, body := c.fetch("acme/cli", "http://"+srv+":8080/whoami"); code != http.StatusBadGateway {
		t.Fatalf("inner reached outer with no router: %d %q", code, body)
	}

	gw := c.createVM("acme/gw", "--network", "outer", "--network", "inner", "--router", "inner",
		"--user-data", "echo router-ready >/dev/console")
	if len(gw.Addresses) != 3 || !strings.HasPrefix(gw.Addresses[1], "100.83.0.") || !strings.HasPrefix(gw.Addresses[2], "100.82.0.") {
		t.Fatalf("router's addresses: %v", gw.Addresses)
	}
	c.waitConsoleAfter("acme/gw", "", "router-ready")
	// The apps' instances took their routes when ring 0 said a router came: cli's default
	// route is gw's inner address; srv reaches inner through gw's outer one.
	c.waitFetch("acme/cli", "http://"+srv+":8080/whoami", "acme/srv")
	// A VM on inner, made after the router, boots with its default route through it.
	c.createVM("acme/in1", "--network", "inner", "--user-data", `for i in $(seq 100); do `+
		`r=$(printf 'GET /whoami HTTP/1.0\r\n\r\n' | nc -w 1 `+srv+` 8080 2>/dev/null | tail -n 1); [ -n "$r" ] && break; sleep 0.2; done; `+
		`echo "routed: $r" >/dev/console`)
	c.waitConsoleAfter("acme/in1", "", "routed: acme/srv")

	if out, err := exec.Command(harness.Binary(t), "vms", "create", "acme/gw2", "--image", "guest", "--type", "small",
		"--network", "outer", "--network", "inner", "--router", "inner", "--state-dir", c.state).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "router already") {
		t.Fatalf("a second router for inner: %v\n%s", err, out)
	}
	t.Logf("acme/cli and acme/in1 on inner reached acme/srv on outer through acme/gw (%s, %s); a second router refused", gw.Addresses[2], gw.Addresses[1])

	c.cli("vms", "destroy", "acme/in1")
	c.cli("vms", "destroy", "acme/gw")
	c.cli("apps", "destroy", "acme/cli")
	c.cli("apps", "destroy", "acme/srv")
	c.cli("rulesets", "delete", "acme/from-inner")
	c.cli("networks", "delete", "acme/inner")
	c.cli("networks", "delete", "acme/outer")
}
