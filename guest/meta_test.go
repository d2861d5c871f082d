package guest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"enjin/guest"
	"enjin/keys"
)

// credsFor makes a .creds file for a user named name, signed by a throwaway account: enough
// for the metadata checks, which read a credential but do not judge its issuer.
func credsFor(t testing.TB, name string) string {
	t.Helper()
	acct, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	tok, err := uc.Encode(acct)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	b, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goodMeta is metadata as a host would write it, as a JSON object to break field by field.
func goodMeta(t testing.TB) map[string]any {
	att, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"node": "vm-1", "tenant": "acme", "name": "web server", "hostname": "web-1",
		"addresses": []string{"100.64.0.5/24", "fd00::5/64"}, "gateway": "100.64.0.1",
		"nats": []string{"nats://100.64.0.1:4222"}, "creds": credsFor(t, "vm-1"),
		"attest_seed": att.SeedText(), "ssh_keys": []string{"ssh-ed25519 AAAAC3Nza user@host"},
		"user_data": "#cloud-config\n", "heartbeat": "5s",
		"links": []map[string]any{{"mac": "52:54:00:12:34:56", "addresses": []string{"100.77.0.2/24"},
			"routes": []map[string]any{{"to": "0.0.0.0/0", "via": "100.77.0.1"}, {"to": "100.78.0.0/24", "via": "100.77.0.9"}}, "forward": true}},
	}
}

func encode(t testing.TB, m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMeta(t *testing.T) {
	good := goodMeta(t)
	m, err := guest.ParseMeta(encode(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if m.Node != "vm-1" || m.Tenant != "acme" || m.HostnameOrNode() != "web-1" || m.Period() != 5*time.Second ||
		len(m.Addresses) != 2 || m.Gateway.String() != "100.64.0.1" || len(m.NATS) != 1 {
		t.Fatalf("got %+v", m)
	}
	// What the host marshals, the guest reads back the same.
	again, err := guest.ParseMeta(must(json.Marshal(m)))
	if err != nil || !bytes.Equal(must(json.Marshal(again)), must(json.Marshal(m))) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, again, m)
	}
	var out strings.Builder
	if err := m.WriteNet(&out); err != nil {
		t.Fatal(err)
	}
	want := "hostname web-1\naddress 100.64.0.5/24\naddress fd00::5/64\ngateway 100.64.0.1\nlink 52:54:00:12:34:56 100.77.0.2/24\n" +
		"route 52:54:00:12:34:56 0.0.0.0/0 100.77.0.1\nroute 52:54:00:12:34:56 100.78.0.0/24 100.77.0.9\nforward 1\n"
	if out.String() != want {
		t.Errorf("WriteNet: got %q want %q", out.String(), want)
	}

	bare, err := guest.ParseMeta([]byte(`{"node":"vm-2","tenant":"acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	bare.WriteNet(&out)
	if bare.Period() != guest.DefaultHeartbeat || out.String() != "hostname vm-2\n" {
		t.Errorf("without network: period %v, net %q; want %v and only the hostname", bare.Period(), out.String(), guest.DefaultHeartbeat)
	}
	if _, err := guest.New(guest.Config{Meta: bare}); err == nil || !strings.Contains(err.Error(), "no nats URL") {
		t.Errorf("agent without a bus: got %v, want an error naming the missing nats URL", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestParseMetaRefuses feeds malformed and hostile metadata: each is refused with an error
// naming what is wrong, and none panics.
func TestParseMetaRefuses(t *testing.T) {
	other, _ := keys.NewAttestation()
	creds := credsFor(t, "vm-1")
	for _, tc := range []struct {
		name  string
		field string
		value any // nil deletes the field
		raw   string
		want  string
	}{
		{name: "empty", raw: "", want: "EOF"},
		{name: "not JSON", raw: "node=vm-1", want: "invalid character"},
		{name: "array", raw: "[]", want: "cannot unmarshal array"},
		{name: "trailing", raw: `{"node":"vm-1","tenant":"acme"} {}`, want: "more after the JSON object"},
		{name: "huge", raw: `{"user_data":"` + strings.Repeat("x", guest.MaxMetaSize) + `"}`, want: "more than"},
		{name: "no node", field: "node", value: nil, want: "node: node id"},
		{name: "node with a dot", field: "node", value: "vm.1", want: "not a slug or UUID"},
		{name: "node wildcard", field: "node", value: ">", want: "not a slug or UUID"},
		{name: "node a number", field: "node", value: 7, want: "cannot unmarshal number"},
		{name: "bad tenant", field: "tenant", value: "Acme Corp", want: "tenant: tenant id"},
		{name: "shell in hostname", field: "hostname", value: "$(reboot)", want: "hostname"},
		{name: "newline in hostname", field: "hostname", value: "web\naddress 1.2.3.4/8", want: "hostname"},
		{name: "long label", field: "hostname", value: strings.Repeat("a", 64), want: "hostname"},
		{name: "control in name", field: "name", value: "web\x1b[2J", want: "name"},
		{name: "address without length", field: "addresses", value: []string{"100.64.0.5"}, want: "no '/'"},
		{name: "address length", field: "addresses", value: []string{"100.64.0.5/33"}, want: "out of range"},
		{name: "address garbage", field: "addresses", value: []string{"; rm -rf /"}, want: "ParsePrefix"},
		{name: "address empty", field: "addresses", value: []string{""}, want: "addresses[0]"},
		{name: "address loopback", field: "addresses", value: []string{"127.0.0.1/8"}, want: "addresses[0]"},
		{name: "address zone", field: "addresses", value: []string{"fe80::1%eth0/64"}, want: "ParsePrefix"},
		{name: "addresses a string", field: "addresses", value: "100.64.0.5/24", want: "cannot unmarshal string"},
		{name: "too many addresses", field: "addresses", value: make([]string, 17), want: "more than 16"},
		{name: "link mac shell", field: "links", value: []map[string]any{{"mac": "$(reboot)"}}, want: "links[0]: mac"},
		{name: "link mac upper case", field: "links", value: []map[string]any{{"mac": "52:54:00:AB:CD:EF"}}, want: "links[0]: mac"},
		{name: "link address garbage", field: "links", value: []map[string]any{{"mac": "52:54:00:12:34:56", "addresses": []string{"0.0.0.0/0"}}}, want: "links[0].addresses[0]"},
		{name: "too many links", field: "links", value: make([]map[string]any, 9), want: "more than 8"},
		{name: "route via another link", field: "links", value: []map[string]any{{"mac": "52:54:00:12:34:56", "addresses": []string{"100.77.0.2/24"},
			"routes": []map[string]any{{"to": "0.0.0.0/0", "via": "100.99.0.1"}}}}, want: "links[0].routes[0]"},
		{name: "route host bits", field: "links", value: []map[string]any{{"mac": "52:54:00:12:34:56", "addresses": []string{"100.77.0.2/24"},
			"routes": []map[string]any{{"to": "100.78.0.1/24", "via": "100.77.0.1"}}}}, want: "links[0].routes[0]"},
		{name: "route IPv6", field: "links", value: []map[string]any{{"mac": "52:54:00:12:34:56", "addresses": []string{"100.77.0.2/24"},
			"routes": []map[string]any{{"to": "::/0", "via": "100.77.0.1"}}}}, want: "links[0].routes[0]"},
		{name: "gateway garbage", field: "gateway", value: "router", want: "ParseAddr"},
		{name: "gateway off link", field: "gateway", value: "10.0.0.1", want: "on the link of none"},
		{name: "gateway without addresses", field: "addresses", value: nil, want: "on the link of none"},
		{name: "gateway multicast", field: "gateway", value: "224.0.0.1", want: "not a router"},
		{name: "nats scheme", field: "nats", value: []string{"http://100.64.0.1:4222"}, want: "nats[0]"},
		{name: "nats password", field: "nats", value: []string{"nats://me:secret@100.64.0.1:4222"}, want: "must not carry a password"},
		{name: "nats comma", field: "nats", value: []string{"nats://a:1,nats://b:2"}, want: "nats[0]"},
		{name: "nats no host", field: "nats", value: []string{"nats://:4222"}, want: "host[:port]"},
		{name: "nats a string", field: "nats", value: "nats://a:1", want: "cannot unmarshal string"},
		{name: "creds garbage", field: "creds", value: "-----BEGIN NATS USER JWT-----\nxx\n------END NATS USER JWT------\n", want: "creds:"},
		{name: "creds of another node", field: "creds", value: credsFor(t, "vm-2"), want: `creds: for "vm-2", not for node vm-1`},
		{name: "creds without seed", field: "creds", value: strings.Split(creds, "************************* IMPORTANT")[0], want: "creds:"},
		{name: "attest garbage", field: "attest_seed", value: "hunter2", want: "attest_seed: keys: not an attestation key"},
		{name: "attest short", field: "attest_seed", value: other.SeedText()[:30], want: "attest_seed: keys: malformed"},
		{name: "ssh key newline", field: "ssh_keys", value: []string{"ssh-ed25519 AAAA\ncommand=\"sh\""}, want: "ssh_keys[0]"},
		{name: "ssh key empty", field: "ssh_keys", value: []string{""}, want: "ssh_keys[0]"},
		{name: "heartbeat words", field: "heartbeat", value: "forever", want: `invalid duration "forever"`},
		{name: "heartbeat a number", field: "heartbeat", value: 5, want: "heartbeat"},
		{name: "heartbeat negative", field: "heartbeat", value: "-1s", want: "heartbeat -1s: want 100ms to 10m0s"},
		{name: "heartbeat tiny", field: "heartbeat", value: "1ns", want: "heartbeat 1ns"},
		{name: "heartbeat huge", field: "heartbeat", value: "9999h", want: "heartbeat 9999h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.raw)
			if tc.field != "" {
				m := goodMeta(t)
				if tc.value == nil {
					delete(m, tc.field)
				} else {
					m[tc.field] = tc.value
				}
				b = encode(t, m)
			}
			m, err := guest.ParseMeta(b)
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !strings.HasPrefix(err.Error(), "guest: metadata") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want an error starting \"guest: metadata\" that says %q", err, tc.want)
			}
		})
	}
}

func TestReadMeta(t *testing.T) {
	dir := t.TempDir()
	if _, err := guest.ReadMeta(filepath.Join(dir, "none")); !errors.Is(err, guest.ErrNoMeta) {
		t.Errorf("missing file: got %v, want ErrNoMeta", err)
	}
	p := filepath.Join(dir, "meta")
	os.WriteFile(p, bytes.Repeat([]byte(" "), guest.MaxMetaSize+2), 0o600)
	if _, err := guest.ReadMeta(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("oversized file: got %v, want an error naming %s", err, p)
	}
	os.WriteFile(p, encode(t, goodMeta(t)), 0o600)
	if m, err := guest.ReadMeta(p); err != nil || m.Node != "vm-1" {
		t.Errorf("got %v, %v", m, err)
	}
}

// FuzzParseMeta feeds arbitrary bytes to the metadata parser: nothing may panic, and what it
// accepts must write network lines a shell reads safely and survive a round trip.
func FuzzParseMeta(f *testing.F) {
	f.Add(encode(f, goodMeta(f)))
	f.Add([]byte(`{"node":"vm-1","tenant":"acme","addresses":["100.64.0.5/24"],"gateway":"100.64.0.1"}`))
	f.Add([]byte(`{"node":"vm-1","tenant":"acme","hostname":"a.b","heartbeat":"1m"}`))
	f.Add([]byte(`{"node":"vm-1","tenant":"acme","nats":["tls://h:1"],"ssh_keys":["k"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := guest.ParseMeta(b)
		if err != nil {
			return
		}
		var out strings.Builder
		m.WriteNet(&out)
		for line := range strings.Lines(out.String()) {
			f := strings.Fields(line)
			want := 2
			if len(f) > 0 {
				want = map[string]int{"link": 3, "route": 4}[f[0]]
				want = max(want, 2)
			}
			if len(f) != want || strings.ContainsAny(line, "$`\\\"';&|<>(){}*?[]!#~") {
				t.Fatalf("%q: unsafe network line %q", b, line)
			}
		}
		if _, err := guest.ParseMeta(must(json.Marshal(m))); err != nil {
			t.Fatalf("%q: accepted, but not its own encoding: %v", b, err)
		}
	})
}

// TestHostMeta reads the metadata of a VM that is a ring 1 host — no tenant, credential or
// key of its own yet, a join token and ring 0's API — and refuses every host part that could
// not make one, or that would let it be a tenant's too.
func TestHostMeta(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{"node": "5f0c1c9e-8f43-4c51-9a59-2b1f0a3c7d11", "addresses": []string{"100.64.0.5/24"},
			"gateway": "100.64.0.1", "nats": []string{"nats://100.64.0.1:4222"},
			"host": map[string]any{"token": "abcDEF_123-xyz", "ring0": "http://100.64.0.1:4280", "apps": "100.127.0.0/16"}}
	}
	m, err := guest.ParseMeta(encode(t, good()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Host == nil || m.Host.Token != "abcDEF_123-xyz" || m.Host.Ring0 != "http://100.64.0.1:4280" || m.Host.Apps.String() != "100.127.0.0/16" || m.Tenant != "" {
		t.Fatalf("got %+v, host %+v", m, m.Host)
	}
	creds := credsFor(t, "5f0c1c9e-8f43-4c51-9a59-2b1f0a3c7d11")
	for _, tc := range []struct {
		name string
		top  map[string]any // set at the top level
		host map[string]any // set in host
		drop string         // deleted from host
		want string
	}{
		{name: "a tenant's too", top: map[string]any{"tenant": "acme"}, want: "no tenant, creds or attest_seed"},
		{name: "with creds", top: map[string]any{"creds": creds}, want: "no tenant, creds or attest_seed"},
		{name: "no token", drop: "token", want: "token:"},
		{name: "token with a newline", host: map[string]any{"token": "abc\nring0 http://evil"}, want: "token:"},
		{name: "token huge", host: map[string]any{"token": strings.Repeat("a", 257)}, want: "token:"},
		{name: "no ring0", drop: "ring0", want: "ring0"},
		{name: "ring0 file URL", host: map[string]any{"ring0": "file:///etc/passwd"}, want: "ring0"},
		{name: "ring0 with a path", host: map[string]any{"ring0": "http://100.64.0.1:4280/v1/join"}, want: "ring0"},
		{name: "ring0 with a password", host: map[string]any{"ring0": "http://me:pw@100.64.0.1:4280"}, want: "ring0"},
		{name: "no apps block", drop: "apps", want: "apps"},
		{name: "apps IPv6", host: map[string]any{"apps": "fd00::/64"}, want: "apps"},
		{name: "apps host bits", host: map[string]any{"apps": "100.127.0.1/16"}, want: "apps"},
		{name: "apps tiny", host: map[string]any{"apps": "100.127.0.0/30"}, want: "apps"},
		{name: "apps over its own address", host: map[string]any{"apps": "100.64.0.0/16"}, want: "overlaps the VM's address"},
		{name: "host a string", top: map[string]any{"host": "yes"}, want: "cannot unmarshal string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			h := m["host"].(map[string]any)
			maps.Copy(h, tc.host)
			delete(h, tc.drop)
			maps.Copy(m, tc.top)
			got, err := guest.ParseMeta(encode(t, m))
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to say %q", err, tc.want)
			}
		})
	}
}
