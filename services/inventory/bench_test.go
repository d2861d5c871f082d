package inventory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// BenchmarkIngest stores batches of 1,000 heartbeats of 1,000 registered nodes (each node
// once a batch, its sequence rising batch to batch) into a throwaway PostgreSQL, as ring 0's
// commit loop does; it reports observations stored per second, the CPU a batch cost this
// process (client-ms/op) and the server's processes (server-ms/op), and the WAL written per
// observation.
func BenchmarkIngest(b *testing.B) {
	const nodes = 1000
	pg := harness.StartPostgres(b)
	url := pg.CreateDatabase(b, "")
	s, err := inventory.Open(b.Context(), url, harness.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	conn, err := pgx.Connect(b.Context(), url) // asks where the WAL is
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	wal := func() (lsn string) {
		if err := conn.QueryRow(b.Context(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
			b.Fatal(err)
		}
		return lsn
	}
	ids := make([]enjin.NodeID, nodes)
	for i := range ids {
		ids[i] = enjin.NodeID(fmt.Sprintf("sim-%06d", i))
		if _, err := s.RegisterNode(b.Context(), inventory.Node{ID: ids[i], Ring: enjin.Ring1, Supervision: "process",
			Observation: "self", AttestPub: "key-" + string(ids[i])}); err != nil {
			b.Fatal(err)
		}
	}
	batch, payloads := make([]inventory.Record, nodes), make([][]byte, nodes)
	for i, id := range ids { // a heartbeat as `enjin bench ingest` sends it
		payloads[i], _ = json.Marshal(enjin.Observation{Node: id, Ring: enjin.Ring1, State: enjin.StateUp, Time: time.Now(), MemBytes: 64 << 20})
	}
	sig := make([]byte, 64)
	client, server, from := cpu(b, 0), cpu(b, pg.PID()), wal()
	b.ResetTimer()
	for n := range b.N {
		now := time.Now()
		for i, id := range ids {
			batch[i] = inventory.Record{SignedObservation: enjin.SignedObservation{Node: id, Seq: uint64(n + 1), TsNs: now.UnixNano(),
				ReceivedAt: now, Signer: "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4", Sig: sig, Payload: payloads[i]}, State: "up"}
		}
		if err := s.Ingest(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var walBytes float64
	if err := conn.QueryRow(b.Context(), `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)`, wal(), from).Scan(&walBytes); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(walBytes/float64(b.N*nodes), "wal-B/obs")
	b.ReportMetric(float64(b.N*nodes)/b.Elapsed().Seconds(), "obs/s")
	b.ReportMetric((cpu(b, 0)-client).Seconds()*1000/float64(b.N), "client-ms/op")
	b.ReportMetric((cpu(b, pg.PID())-server).Seconds()*1000/float64(b.N), "server-ms/op")
}

// cpu is the CPU time (user and system) this process has used, or with a postmaster's pid,
// what the processes it started (the server's backends and workers) have.
func cpu(b *testing.B, postmaster int) time.Duration {
	if postmaster == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid … utime stime (fields 4, 14, 15); comm may hold spaces.
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		if len(f) < 13 || f[1] != strconv.Itoa(postmaster) {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
