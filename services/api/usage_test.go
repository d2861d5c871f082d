package api_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"enjin"
	"enjin/bus"
	"enjin/keys"
	"enjin/services/inventory"
)

// TestCompartmentUsage rolls up what nodes report of themselves by compartment: a rack's
// usage counts its own node and the node of the compartment below it, from each node's newest
// own observation (a child's observation, signed by its host as observer, is not the host's
// claim); the compartment below counts only its own; a node that reported nothing counts
// as a node, not as figures; a compartment nobody made is a 404, a malformed id a 400.
func TestCompartmentUsage(t *testing.T) {
	e := newEnv(t)
	mk := func(body string) string {
		r := e.do(t, "POST", "/v1/compartments", []byte(body), "Authorization", asAdmin, "Content-Type", "application/json")
		if r.status != 201 {
			t.Fatalf("compartment %s: %d %s", body, r.status, r.body)
		}
		return str(r.json, "id")
	}
	rack := mk(`{"ring":1,"type":"rack","label":"rack-1"}`)
	shelf := mk(fmt.Sprintf(`{"ring":1,"type":"shelf","label":"shelf-1","parents":[%q]}`, rack))
	for node, comp := range map[string]string{"h1": rack, "h2": shelf, "h3": shelf} {
		body := fmt.Sprintf(`{"id":%q,"ring":1,"supervision_strategy":"external","observation_strategy":"self","compartment":%q}`, node, comp)
		if r := e.do(t, "POST", "/v1/nodes", []byte(body), "Authorization", asAdmin, "Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("node %s: %d %s", node, r.status, r.body)
		}
	}
	claim := func(cpu float64, mem uint64, kids ...enjin.Child) string {
		b, _ := json.Marshal(enjin.Observation{State: "up", CPU: cpu, MemBytes: mem, VMMemoryMB: 1024, Children: kids})
		return string(b)
	}
	k, _ := keys.NewAttestation()
	var batch []inventory.Record
	for i, o := range []struct {
		node, observer, payload string
	}{
		{"h1", "", claim(0.5, 100)}, // older: not counted
		{"h1", "", claim(0.25, 200, enjin.Child{Node: "i1", Tenant: "acme", App: "web", CPU: 0.5, MemBytes: 1000})},
		{"h2", "", claim(0.125, 300)},
		{"h2", "h2", claim(9, 9999)}, // newer, but a child's: the host's claim stays the one above
	} {
		ob := inventory.Record{SignedObservation: enjin.SignedObservation{Node: enjin.NodeID(o.node), Seq: uint64(i + 1), TsNs: time.Now().UnixNano(),
			ReceivedAt: time.Now(), Signer: k.Public(), Payload: []byte(o.payload), Observer: enjin.NodeID(o.observer)}, State: "up"}
		ob.Sig = k.Sign(bus.Canonical(nil, ob.Node, ob.TsNs, ob.Seq, ob.Payload))
		batch = append(batch, ob)
	}
	if err := e.store.Ingest(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	var u struct {
		Nodes, Reporting, Instances int
		CPU                         float64
		MemBytes                    uint64 `json:"mem_bytes"`
		VMMemoryMB                  int64  `json:"vm_memory_mb"`
	}
	for _, tc := range []struct {
		id                     string
		nodes, reporting, inst int
		cpu                    float64
		mem                    uint64
	}{
		{rack, 3, 2, 1, 0.25 + 0.5 + 0.125, 200 + 1000 + 300},
		{shelf, 2, 1, 0, 0.125, 300},
	} {
		r := e.do(t, "GET", "/v1/compartments/"+tc.id+"/usage", nil, "Authorization", asBob)
		if r.status != 200 || json.Unmarshal(r.body, &u) != nil {
			t.Fatalf("usage of %s: %d %s", tc.id, r.status, r.body)
		}
		if u.Nodes != tc.nodes || u.Reporting != tc.reporting || u.Instances != tc.inst || u.CPU != tc.cpu || u.MemBytes != tc.mem || u.VMMemoryMB != int64(1024*tc.reporting) {
			t.Fatalf("usage of %s: %s", tc.id, r.body)
		}
	}
	if r := e.do(t, "GET", "/v1/compartments/5f0c1c9e-8f43-4c51-9a59-2b1f0a3c7d11/usage", nil, "Authorization", asBob); r.status != 404 || r.json["error"] == nil {
		t.Fatalf("usage of nobody's compartment: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/compartments/rack-1/usage", nil, "Authorization", asBob); r.status != 400 || r.json["error"] == nil {
		t.Fatalf("usage of a malformed id: %d %s", r.status, r.body)
	}
}
