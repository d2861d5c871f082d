package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"enjin/keys"
	"enjin/test/harness"
)

// TestTLSBeyondLoopback runs `enjin up` listening on an address beyond loopback (in a network
// namespace of the test's) and checks that everything there speaks TLS from the trust chain's
// CA, and nothing else gets in: the meta API answers the CLI (which trusts the CA from
// endpoints.json) and refuses handshakes with clients trusting other CAs or the system's, and
// plain HTTP; the broker serves ring1-local (which trusts the CA ring 0 gave it) and the nats
// CLI's credential over TLS only; an external node joins with a token carrying the CA's
// fingerprint, and a token naming another CA, or none, gets nowhere (its secret is never sent,
// so the right token still works after).
func TestTLSBeyondLoopback(t *testing.T) {
	n := harness.Unique(200) + 20
	ns, addr := fmt.Sprintf("enjtls%d", n), fmt.Sprintf("100.64.%d.1", n)
	harness.Netns(t, ns, false)
	harness.Run(t, "ip", "-n", ns, "link", "add", "t0", "type", "veth", "peer", "name", "t1")
	harness.Run(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "t0")
	harness.Run(t, "ip", "-n", ns, "link", "set", "t0", "up")
	harness.Run(t, "ip", "-n", ns, "link", "set", "t1", "up")
	dir := tempDir(t, "enjin-tls-")
	state := filepath.Join(dir, "state")
	bin := harness.Binary(t)
	inNS := func(args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	t.Cleanup(func() { harness.StopDetached(t, state) })
	up := harness.Adopt(t, inNS("up", "--state-dir", state, "--no-apps", "--api-addr", addr+":7070",
		"--nats-host", addr, "--heartbeat", "300ms", "--log-level", "warn"))
	var ep struct {
		API, NATS, CA string
		OpsCreds      string `json:"ops_creds"`
	}
	harness.Eventually(t, 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(state, "endpoints.json"))
		return err == nil && json.Unmarshal(b, &ep) == nil
	}, "enjin up ready (output so far: %s)", up.Out)
	if ep.API != "https://"+addr+":7070" || !strings.HasPrefix(ep.NATS, "tls://"+addr+":") || ep.CA == "" {
		t.Fatalf("endpoints beyond loopback: api %q, nats %q, ca %q", ep.API, ep.NATS, ep.CA)
	}
	caPEM, err := os.ReadFile(ep.CA)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := keys.ParseCA(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	// Dials from the namespace, where the cloud listens.
	dial := func(ctx context.Context, network, a string) (c net.Conn, err error) {
		harness.InNetns(t, ns, func() { c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, a) })
		return c, err
	}
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: cfg}}
	}

	// The CLI, as a user runs it beside the cloud: endpoints.json names the API and its CA.
	cli := func(args ...string) (string, error) {
		out, err := inNS(append(args, "--state-dir", state)...).CombinedOutput()
		return string(out), err
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		out, err := cli("nodes", "--state", "up", "-o", "json")
		return err == nil && strings.Contains(out, `"ring1-local"`)
	}, "ring1-local up, through the broker's TLS listener")

	// Handshakes the API refuses to finish: other CAs, the system's, plain HTTP.
	other, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherCA, _ := other.CA()
	otherTLS, _ := keys.ClientTLS(otherCA.PEM, keys.Ring0Name)
	var unknown x509.UnknownAuthorityError
	for name, cfg := range map[string]*tls.Config{"another CA": otherTLS, "the system's CAs": nil} {
		_, err := client(cfg).Get(ep.API + "/healthz")
		if !errors.As(err, &unknown) {
			t.Errorf("API with %s: %v, want an unknown authority", name, err)
		}
	}
	resp, err := client(nil).Get("http://" + addr + ":7070/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "ok") {
			t.Errorf("plain HTTP to the API: %d %s", resp.StatusCode, b)
		}
	}
	good, _ := keys.ClientTLS(caPEM, keys.Ring0Name)
	resp, err = client(good).Get(ep.API + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API with the CA: %v %v", resp, err)
	}
	resp.Body.Close()
	if s := resp.TLS.PeerCertificates; len(s) < 2 || keys.Fingerprint(s[len(s)-1]) != keys.Fingerprint(ca) {
		t.Errorf("the API's chain does not end with the CA")
	}

	// The broker: the ops credential gets in over TLS with the CA, not without it.
	natsDial := nats.SetCustomDialer(nsDialer{dial})
	if nc, err := nats.Connect(ep.NATS, nats.UserCredentials(ep.OpsCreds), natsDial, nats.Secure(otherTLS)); err == nil {
		nc.Close()
		t.Error("the broker let in a client trusting another CA")
	}
	plain := strings.Replace(ep.NATS, "tls://", "nats://", 1)
	if nc, err := nats.Connect(plain, nats.UserCredentials(ep.OpsCreds), natsDial, nats.Secure(&tls.Config{})); err == nil {
		nc.Close()
		t.Error("the broker let in a client trusting the system's CAs")
	}
	nc, err := nats.Connect(ep.NATS, nats.UserCredentials(ep.OpsCreds), natsDial, nats.Secure(good))
	if err != nil {
		t.Fatalf("ops creds with the CA: %v", err)
	}
	sub, err := nc.SubscribeSync("ops.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Errorf("nothing on ops.> over TLS: %v", err)
	}
	nc.Close()

	// An external node joins over https, pinning the CA by the token's fingerprint.
	admin, err := os.ReadFile(filepath.Join(state, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, ep.API+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(admin)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client(good).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := api("POST", "/v1/nodes", `{"id":"edge-tls","ring":1,"supervision_strategy":"external","observation_strategy":"self"}`); code != 201 {
		t.Fatalf("register edge-tls: %d %s", code, b)
	}
	code, out := api("POST", "/v1/nodes/edge-tls/join-token", `{"ttl_seconds":600}`)
	var jt struct {
		Token         string
		CAFingerprint string `json:"ca_fingerprint"`
	}
	if code != 201 || json.Unmarshal([]byte(out), &jt) != nil || jt.CAFingerprint != keys.Fingerprint(ca) ||
		!strings.HasSuffix(jt.Token, "."+jt.CAFingerprint) {
		t.Fatalf("join token: %d %s", code, out)
	}
	secret, _ := keys.SplitJoinToken(jt.Token)
	joinState := filepath.Join(dir, "edge")
	// join runs a node joining with token; refused, it returns what the node said.
	join := func(token string, refused bool) (string, error) {
		f := filepath.Join(dir, "join.token")
		if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := inNS("ring1", "--join-file", f, "--ring0", ep.API, "--state-dir", joinState, "--heartbeat", "300ms")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }() // ends when it exits; the cleanup below stops it
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
		if !refused {
			return "", nil // it runs until the cleanup; the test waits for it to be up
		}
		select {
		case <-done:
			return out.String(), fmt.Errorf("exit %d", cmd.ProcessState.ExitCode())
		case <-time.After(20 * time.Second):
			return "", errors.New("still running")
		}
	}
	for name, tok := range map[string]string{
		"another CA's fingerprint": keys.JoinToken(secret, otherCA.Fingerprint()),
		"no fingerprint":           secret,
	} {
		out, err := join(tok, true)
		if err == nil || !strings.Contains(out, map[string]string{"another CA's fingerprint": "not from the CA the join token names",
			"no fingerprint": "carries no CA fingerprint"}[name]) {
			t.Fatalf("joining with %s: %v\n%s", name, err, out)
		}
		os.RemoveAll(joinState)
	}
	join(jt.Token, false)
	harness.Eventually(t, 30*time.Second, func() bool {
		out, err := cli("nodes", "--state", "up", "-o", "json")
		return err == nil && strings.Contains(out, `"edge-tls"`)
	}, "edge-tls up over TLS")
	if b, err := os.ReadFile(filepath.Join(joinState, "ring1", "ca.crt")); err != nil || string(b) != string(caPEM) {
		t.Errorf("the joined node keeps the CA: %v", err)
	}
	t.Logf("API %s and broker %s served TLS from CA %s; refused another CA, the system's, plain HTTP; edge-tls joined pinned",
		ep.API, ep.NATS, keys.Fingerprint(ca)[:19])
}

// nsDialer is a nats.CustomDialer dialling from the test's namespace.
type nsDialer struct {
	dial func(context.Context, string, string) (net.Conn, error)
}

func (d nsDialer) Dial(network, address string) (net.Conn, error) {
	return d.dial(context.Background(), network, address)
}
