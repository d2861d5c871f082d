package api_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/inventory"
)

func nodeSteps(e *env) []step {
	node := func(id, sup string) string {
		return fmt.Sprintf(`{"id":%q,"ring":1,"supervision_strategy":%q,"observation_strategy":"self"}`, id, sup)
	}
	post := func(name, body string, status int, code string) step {
		return step{name: name, method: "POST", path: "/v1/nodes", auth: asAdmin, body: body, status: status, code: code}
	}
	return []step{
		{name: "register n1", method: "POST", path: "/v1/nodes", auth: asAdmin,
			body: `{"id":"n1","ring":1,"label":"node one","supervision_strategy":"process","observation_strategy":"self",
				"compartment":"{c1}","metadata":{"role":"db"}}`, status: 201,
			check: func(t *testing.T, r response, v map[string]string) {
				want("id", "n1", "compartment", "{c1}", "state", "unknown", "metadata.role", "db", "tiers", "[]")(t, r, v)
				wantHeader("Location", "/v1/nodes/n1")(t, r, v)
				wantHeader("ETag", `"1"`)(t, r, v)
			}},
		post("register n1 again", node("n1", "process"), 409, "exists"),
		post("register external", node("ext-1", "external"), 201, ""),
		post("register n2", node("n2", "process"), 201, ""),
		post("register n3", `{"id":"n3","ring":1,"supervision_strategy":"libvirt","observation_strategy":"probe","parent_node":"n1"}`, 201, ""),
		post("register n4", node("n4", "process"), 201, ""),
		post("bad id", node("Bad_ID", "process"), 422, "invalid"),
		post("missing id", `{"ring":1,"supervision_strategy":"process","observation_strategy":"self"}`, 422, "invalid"),
		post("bad strategy", node("n9", "magic"), 422, "invalid"),
		post("missing observation strategy", `{"id":"n9","ring":1,"supervision_strategy":"process"}`, 422, "invalid"),
		post("unknown parent", `{"id":"n9","ring":1,"supervision_strategy":"process","observation_strategy":"self","parent_node":"ghost"}`, 422, "invalid"),
		post("bad compartment", `{"id":"n9","ring":1,"supervision_strategy":"process","observation_strategy":"self","compartment":"c1"}`, 422, "invalid"),
		post("missing compartment", `{"id":"n9","ring":1,"supervision_strategy":"process","observation_strategy":"self","compartment":"{nouuid}"}`, 422, "invalid"),
		post("keys are not accepted", `{"id":"n9","ring":1,"supervision_strategy":"process","observation_strategy":"self","auth_pub":"U"}`, 400, "bad_json"),
		{name: "list", method: "GET", path: "/v1/nodes", auth: asBob, status: 200, check: count("nodes", 5)},
		{name: "list ring 1", method: "GET", path: "/v1/nodes?ring=1", auth: asBob, status: 200, check: count("nodes", 5)},
		{name: "list ring 0", method: "GET", path: "/v1/nodes?ring=0", auth: asBob, status: 200, check: count("nodes", 0)},
		{name: "list ring 3", method: "GET", path: "/v1/nodes?ring=3", auth: asBob, status: 400, code: "bad_query"},
		{name: "list ring 01", method: "GET", path: "/v1/nodes?ring=01", auth: asBob, status: 400},
		{name: "list state", method: "GET", path: "/v1/nodes?state=unknown", auth: asBob, status: 200, check: count("nodes", 5)},
		{name: "list bad state", method: "GET", path: "/v1/nodes?state=sleepy", auth: asBob, status: 400, code: "bad_query"},
		{name: "list by metadata", method: "GET", path: "/v1/nodes?metadata.role=db", auth: asBob, status: 200,
			check: want("nodes.0.id", "n1", "nodes.1", "")},
		{name: "list page", method: "GET", path: "/v1/nodes?limit=2", auth: asBob, status: 200,
			check: want("nodes.0.id", "ext-1", "nodes.1.id", "n1", "next", "n1")},
		{name: "list next page", method: "GET", path: "/v1/nodes?limit=2&after=n1", auth: asBob, status: 200,
			check: want("nodes.0.id", "n2", "nodes.1.id", "n3", "next", "n3")},
		{name: "list last page", method: "GET", path: "/v1/nodes?limit=2&after=n3", auth: asBob, status: 200,
			check: want("nodes.0.id", "n4", "next", "")},
		{name: "list limit 0", method: "GET", path: "/v1/nodes?limit=0", auth: asBob, status: 400},
		{name: "list limit huge", method: "GET", path: "/v1/nodes?limit=10001", auth: asBob, status: 400},
		{name: "list limit text", method: "GET", path: "/v1/nodes?limit=ten", auth: asBob, status: 400},
		{name: "list bad after", method: "GET", path: "/v1/nodes?after=N1", auth: asBob, status: 400},
		{name: "list repeated ring", method: "GET", path: "/v1/nodes?ring=1&ring=2", auth: asBob, status: 400},
		{name: "list semicolon", method: "GET", path: "/v1/nodes?ring=1;state=up", auth: asBob, status: 400},
		{name: "get", method: "GET", path: "/v1/nodes/n3", auth: asBob, status: 200,
			check: want("parent_node", "n1", "supervision_strategy", "libvirt", "observation_strategy", "probe", "version", "1")},
		{name: "get bad id", method: "GET", path: "/v1/nodes/N%201", auth: asBob, status: 400, code: "bad_id"},
		{name: "get missing", method: "GET", path: "/v1/nodes/ghost", auth: asBob, status: 404, code: "not_found"},
		{name: "patch label", method: "PATCH", path: "/v1/nodes/n1", auth: asAdmin, hdr: []string{"If-Match", `"1"`},
			body: `{"label":"first"}`, status: 200, check: func(t *testing.T, r response, v map[string]string) {
				want("label", "first", "metadata.role", "db", "version", "2")(t, r, v)
				wantHeader("ETag", `"2"`)(t, r, v)
			}},
		{name: "patch stale", method: "PATCH", path: "/v1/nodes/n1", auth: asAdmin, hdr: []string{"If-Match", `"1"`},
			body: `{"label":"again"}`, status: 409, code: "conflict"},
		{name: "patch metadata", method: "PATCH", path: "/v1/nodes/n1", auth: asAdmin, hdr: []string{"If-Match", `"2"`},
			body: `{"metadata":{"role":"web","big":12345678901}}`, status: 200, check: want("label", "first", "metadata.role", "web", "metadata.big", "12345678901")},
		{name: "patch ring", method: "PATCH", path: "/v1/nodes/n1", auth: asAdmin, hdr: []string{"If-Match", `"3"`},
			body: `{"ring":2}`, status: 400, code: "bad_json"},
		{name: "patch missing", method: "PATCH", path: "/v1/nodes/ghost", auth: asAdmin, hdr: []string{"If-Match", `"1"`},
			body: `{"label":"x"}`, status: 404},
		{name: "patch without If-Match", method: "PATCH", path: "/v1/nodes/n1", auth: asAdmin, body: `{"label":"x"}`, status: 428},
		{name: "patch If-Match 0", method: "PATCH", path: "/v1/nodes/n1", auth: asAdmin, hdr: []string{"If-Match", `"0"`},
			body: `{"label":"x"}`, status: 400},
		{name: "patch If-Match overflow", method: "PATCH", path: "/v1/nodes/n1", auth: asAdmin, hdr: []string{"If-Match", `"99999999999999999999"`},
			body: `{"label":"x"}`, status: 400},
		{name: "observations", method: "GET", path: "/v1/nodes/n1/observations", auth: asBob, status: 200,
			before: func(t *testing.T, v map[string]string) { v["signer"] = ingest(t, e.store, "n1") },
			check:  checkObservations},
		{name: "observations page", method: "GET", path: "/v1/nodes/n1/observations?limit=1&before=3", auth: asBob, status: 200,
			check: want("observations.0.seq", "2", "observations.1", "")},
		{name: "observations limit 0", method: "GET", path: "/v1/nodes/n1/observations?limit=0", auth: asBob, status: 400},
		{name: "observations limit 1001", method: "GET", path: "/v1/nodes/n1/observations?limit=1001", auth: asBob, status: 400},
		{name: "observations before 0", method: "GET", path: "/v1/nodes/n1/observations?before=0", auth: asBob, status: 400},
		{name: "observations before huge", method: "GET", path: "/v1/nodes/n1/observations?before=18446744073709551615", auth: asBob, status: 400},
		{name: "observations of nobody", method: "GET", path: "/v1/nodes/ghost/observations", auth: asBob, status: 404},
		{name: "observations of nothing yet", method: "GET", path: "/v1/nodes/n2/observations", auth: asBob, status: 200,
			check: want("observations", "[]")},
		{name: "history of a node", method: "GET", path: "/v1/history/node/n1", auth: asBob, status: 200, check: count("history", 3)},
	}
}

// ingest stores three observations of node signed with a fresh attestation key (the last
// with a payload that is not JSON) and returns the key.
func ingest(t *testing.T, s *inventory.Store, node enjin.NodeID) string {
	t.Helper()
	k, err := keys.NewAttestation()
	if err != nil {
		t.Fatal(err)
	}
	var batch []inventory.Record
	for seq, p := range []string{`{"state":"up","seq":1}`, `{"state":"up","seq":2}`, "\x00not json"} {
		o := inventory.Record{SignedObservation: enjin.SignedObservation{Node: node, Seq: uint64(seq + 1), TsNs: time.Now().UnixNano(), ReceivedAt: time.Now(),
			Signer: k.Public(), Payload: []byte(p)}, State: "up"}
		o.Sig = k.Sign(bus.Canonical(nil, node, o.TsNs, o.Seq, o.Payload))
		batch = append(batch, o)
	}
	if err := s.Ingest(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// checkObservations verifies every observation returned, offline, from the response alone.
func checkObservations(t *testing.T, r response, v map[string]string) {
	count("observations", 3)(t, r, v)
	want("observations.0.seq", "3", "observations.1.observation.seq", "2", "observations.0.observation", "")(t, r, v)
	var page struct {
		Observations []struct {
			Node    enjin.NodeID `json:"node"`
			Seq     uint64       `json:"seq"`
			TsNs    int64        `json:"ts_ns"`
			Signer  string       `json:"signer"`
			Sig     string       `json:"sig"`
			Payload string       `json:"payload"`
		} `json:"observations"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatal(err)
	}
	for i, o := range page.Observations {
		pub, err := keys.ParseAttestationPublic(o.Signer)
		sig, err1 := base64.RawURLEncoding.DecodeString(o.Sig)
		payload, err2 := base64.RawURLEncoding.DecodeString(o.Payload)
		if err != nil || err1 != nil || err2 != nil || o.Signer != v["signer"] {
			t.Fatalf("observation %d: %v %v %v", i, err, err1, err2)
		}
		if !ed25519.Verify(pub, bus.Canonical(nil, o.Node, o.TsNs, o.Seq, payload), sig) {
			t.Errorf("observation %d does not verify", i)
		}
	}
}

func joinSteps() []step {
	newKeys := func(t *testing.T, v map[string]string) {
		u, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		v["ukey"], _ = u.PublicKey()
		a, err := keys.NewAttestation()
		if err != nil {
			t.Fatal(err)
		}
		v["akey"] = a.Public()
	}
	join := func(name, body string, status int, code string) step {
		return step{name: name, method: "POST", path: "/v1/join", body: body, status: status, code: code}
	}
	good := `{"token":"{jt}","user_key":"{ukey}","attest_key":"{akey}"}`
	return []step{
		{name: "join token for a process node", method: "POST", path: "/v1/nodes/n1/join-token", auth: asAdmin, status: 422, code: "invalid"},
		{name: "join token for nobody", method: "POST", path: "/v1/nodes/ghost/join-token", auth: asAdmin, status: 404},
		{name: "join token ttl 0", method: "POST", path: "/v1/nodes/ext-1/join-token", auth: asAdmin, body: `{"ttl_seconds":0}`, status: 422},
		{name: "join token ttl too long", method: "POST", path: "/v1/nodes/ext-1/join-token", auth: asAdmin, body: `{"ttl_seconds":86401}`, status: 422},
		{name: "join token by reader", method: "POST", path: "/v1/nodes/ext-1/join-token", auth: asBob, status: 403},
		{name: "join token", method: "POST", path: "/v1/nodes/ext-1/join-token", auth: asAdmin, status: 201,
			save: map[string]string{"jt": "token"}, before: newKeys,
			check: func(t *testing.T, r response, _ map[string]string) {
				exp, err := time.Parse(time.RFC3339, str(r.json, "expires_at"))
				if d := time.Until(exp); err != nil || d < 59*time.Minute || d > 61*time.Minute {
					t.Errorf("expires_at %q: want an hour from now", str(r.json, "expires_at"))
				}
			}},
		join("join with a bad user key", `{"token":"{jt}","user_key":"{akey}","attest_key":"{akey}"}`, 422, "invalid"),
		join("join with a bad attestation key", `{"token":"{jt}","user_key":"{ukey}","attest_key":"{ukey}"}`, 422, "invalid"),
		join("join without token", `{"user_key":"{ukey}","attest_key":"{akey}"}`, 422, "invalid"),
		join("join with a wrong token", `{"token":"nope","user_key":"{ukey}","attest_key":"{akey}"}`, 403, "bad_token"),
		join("join with extra fields", `{"token":"{jt}","user_key":"{ukey}","attest_key":"{akey}","node":"n1"}`, 400, "bad_json"),
		{name: "join", method: "POST", path: "/v1/join", body: good, status: 200,
			check: want("node", "ext-1", "jwt", "jwt-for-{ukey}", "nats", "nats://127.0.0.1:4222")},
		join("join twice", good, 403, "bad_token"),
		{name: "joined node has its keys", method: "GET", path: "/v1/nodes/ext-1", auth: asAdmin, status: 200,
			check: want("auth_pub", "{ukey}", "attest_pub", "{akey}")},
		{name: "join token by htpasswd admin", method: "POST", path: "/v1/nodes/ext-1/join-token", auth: asAlice,
			body: `{"ttl_seconds":60}`, status: 201},
	}
}

// decommissionSteps take nodes out of service: only an admin, only with the version read,
// never a node hosting a tenant; a decommissioned node stays listed and joins no more.
func decommissionSteps(e *env) []step {
	del := func(name, node, auth, ifMatch string, status int, code string) step {
		s := step{name: name, method: "DELETE", path: "/v1/nodes/" + node, auth: auth, status: status, code: code}
		if ifMatch != "" {
			s.hdr = []string{"If-Match", ifMatch}
		}
		return s
	}
	etag := func(name, node, v string) step {
		return step{name: name, method: "GET", path: "/v1/nodes/" + node, auth: asBob, status: 200, save: map[string]string{v: "@etag"}}
	}
	return []step{
		etag("read n4", "n4", "n4v"),
		del("decommission by reader", "n4", asBob, "{n4v}", 403, "forbidden"),
		del("decommission anonymous", "n4", "", "{n4v}", 401, "unauthorized"),
		{name: "decommission by a tenant", method: "DELETE", path: "/v1/nodes/n4", hdr: []string{"Authorization", "Bearer {tok}", "If-Match", "{n4v}"},
			status: 403, code: "forbidden"},
		del("decommission without If-Match", "n4", asAdmin, "", 428, "precondition_required"),
		del("decommission stale", "n4", asAdmin, `"99"`, 409, "conflict"),
		del("decommission unknown", "ghost", asAdmin, `"1"`, 404, "not_found"),
		del("decommission bad id", "Ghost", asAdmin, `"1"`, 400, "bad_id"),
		{name: "n4 still up to it", method: "GET", path: "/v1/nodes/n4", auth: asBob, status: 200, check: want("state", "unknown")},
		{name: "decommission n4", method: "DELETE", path: "/v1/nodes/n4", auth: asAdmin, hdr: []string{"If-Match", "{n4v}"}, status: 200,
			save: map[string]string{"n4w": "@etag"}, check: want("id", "n4", "state", "decommissioned", "desired_state", "decommissioned")},
		del("decommission n4 again", "n4", asAdmin, "{n4w}", 200, ""),
		{name: "n4 decommissioned", method: "GET", path: "/v1/nodes/n4", auth: asBob, status: 200,
			check: func(t *testing.T, r response, v map[string]string) {
				want("state", "decommissioned")(t, r, v)
				wantHeader("ETag", "{n4w}")(t, r, v)
			}},
		{name: "list decommissioned", method: "GET", path: "/v1/nodes?state=decommissioned", auth: asBob, status: 200,
			check: want("nodes.0.id", "n4", "nodes.1", "")},
		{name: "create hosted tenant", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"hostco"}`, status: 201},
		{name: "read n3", method: "GET", path: "/v1/nodes/n3", auth: asBob, status: 200, save: map[string]string{"n3v": "@etag"},
			before: func(t *testing.T, _ map[string]string) {
				if err := e.store.AddTenantHost(t.Context(), "hostco", "n3", "AKEY"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "decommission a host", method: "DELETE", path: "/v1/nodes/n3", auth: asAdmin, hdr: []string{"If-Match", "{n3v}"},
			status: 409, code: "in_use", check: func(t *testing.T, r response, _ map[string]string) {
				if !strings.Contains(str(r.json, "error"), "hostco") {
					t.Errorf("error %q does not name the tenant", str(r.json, "error"))
				}
			}},
		{name: "register a ring 0 node", method: "POST", path: "/v1/nodes", auth: asAdmin,
			body: `{"id":"r0","ring":0,"supervision_strategy":"process","observation_strategy":"self"}`, status: 201},
		del("decommission a ring 0 node", "r0", asAdmin, `"1"`, 422, "invalid"),
		etag("read ext-1", "ext-1", "extv"),
		del("decommission ext-1", "ext-1", asAdmin, "{extv}", 200, ""),
		{name: "join token for a decommissioned node", method: "POST", path: "/v1/nodes/ext-1/join-token", auth: asAdmin, status: 422, code: "invalid"},
		{name: "history of a decommission", method: "GET", path: "/v1/history/node/n4", auth: asBob, status: 200,
			check: want("history.1.data.state", "decommissioned")},
	}
}
