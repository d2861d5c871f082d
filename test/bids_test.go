package test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"enjin/bus"
	"enjin/services/postgres"
	"enjin/test/harness"
)

// managedDB connects to the PostgreSQL `enjin up` manages for state.
func managedDB(t *testing.T, state string) *pgx.Conn {
	t.Helper()
	url := "postgres://postgres@/" + postgres.Database + "?host=" + filepath.Join(state, "postgres") + "&sslmode=disable"
	db, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(t.Context()) })
	return db
}

// checkBids checks that tenant's app's placement carries a bid its node signed, that
// `enjin verify` finds a tampered one — a changed byte of the bid, the signature left as it
// was — and that it passes again once the record is restored.
func checkBids(t *testing.T, state, tenant, app string) {
	db := managedDB(t, state)
	var node string
	var raw []byte
	if err := db.QueryRow(t.Context(), `SELECT node_id, bid FROM app_hosts WHERE tenant_id = $1 AND app = $2`, tenant, app).Scan(&node, &raw); err != nil {
		t.Fatal(err)
	}
	var sb bus.SignedBid
	if err := json.Unmarshal(raw, &sb); err != nil {
		t.Fatalf("the stored bid %q: %v", raw, err)
	}
	var attest string
	if err := db.QueryRow(t.Context(), `SELECT attest_pub FROM nodes WHERE id = $1`, node).Scan(&attest); err != nil {
		t.Fatal(err)
	}
	bid, err := sb.Open(attest)
	if err != nil || string(bid.Node) != node || string(bid.Tenant) != tenant || bid.App != app || bid.Promise == "" {
		t.Fatalf("the stored bid of %s/%s on %s: %+v %v", tenant, app, node, bid, err)
	}
	t.Logf("%s/%s placed on %s by its bid: %d MiB free, %d instances running, %q", tenant, app, node, bid.MemFreeMB, bid.Instances, bid.Promise)

	tampered := sb
	tampered.Bid = bytes.Replace(sb.Bid, []byte(`"mem_free_mb":`), []byte(`"mem_free_mb":9`), 1)
	forged, _ := json.Marshal(tampered)
	if _, err := db.Exec(t.Context(), `UPDATE app_hosts SET bid = $3 WHERE tenant_id = $1 AND app = $2`, tenant, app, forged); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(harness.Binary(t), "verify", "--state-dir", state).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAIL placement of "+tenant+"/"+app+" on "+node+": bid does not verify: bad signature") ||
		!strings.Contains(string(out), " 1 failed") {
		t.Fatalf("enjin verify with a tampered bid: %v\n%s", err, out)
	}
	t.Logf("enjin verify, a bid tampered with: %s", strings.TrimSpace(string(out)))
	if _, err := db.Exec(t.Context(), `UPDATE app_hosts SET bid = $3 WHERE tenant_id = $1 AND app = $2`, tenant, app, raw); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(harness.Binary(t), "verify", "--state-dir", state).CombinedOutput(); err != nil || !strings.Contains(string(out), " 0 failed") {
		t.Fatalf("enjin verify after the bid was restored: %v\n%s", err, out)
	}
}
