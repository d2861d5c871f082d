package inventory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// Record is one verified observation on its way into the store: the observation as it is
// stored and read back, and what ring 0 learned of it that its row does not keep.
type Record struct {
	enjin.SignedObservation
	State string `json:"-"` // the state the payload claims, for the nodes row

	// For an observation one node made of another (a ring 1 node of its app instances,
	// Observer set): the observed node's tenant and app. The observed node is registered as
	// the observer's ring 2 child the first time, if the observer hosts the tenant;
	// observations of nodes that are not the observer's children are dropped.
	Tenant enjin.TenantID `json:"-"`
	App    string         `json:"-"`
}

// markEvery is how old a node's mark (nodes.last_seq) may grow before a heartbeat that
// says nothing new writes it again (see Ingest).
const markEvery = time.Minute

// Ingest stores a batch of verified observations in one transaction: every observation is
// appended (a duplicate of one already stored is skipped) and each node's row moves forward
// to its highest sequence when its state changes or its mark is markEvery old. When Ingest
// returns nil the batch is committed and may be acknowledged. Two concurrent Ingest calls
// must not share nodes (shard batches by node), so their row locks never cross.
func (s *Store) Ingest(ctx context.Context, all []Record) error {
	if len(all) == 0 {
		return nil
	}
	var batch, children []Record
	for _, o := range all {
		if o.Observer != "" {
			children = append(children, o)
		} else {
			batch = append(batch, o)
		}
	}
	n := len(batch)
	ids, seqs, tss := make([]string, n), make([]int64, n), make([]int64, n)
	ats, signers := make([]time.Time, n), make([]string, n)
	sigs, payloads := make([][]byte, n), make([][]byte, n)
	latest := map[enjin.NodeID]int{}
	for i, o := range batch {
		if o.Seq > 1<<63-1 {
			return fmt.Errorf("inventory: ingest: %s seq %d: %w", o.Node, o.Seq, ErrInvalid)
		}
		ids[i], seqs[i], tss[i], ats[i] = string(o.Node), int64(o.Seq), o.TsNs, o.ReceivedAt
		signers[i], sigs[i], payloads[i] = o.Signer, o.Sig, o.Payload
		if j, ok := latest[o.Node]; !ok || batch[j].Seq < o.Seq {
			latest[o.Node] = i
		}
	}
	order := make([]int, 0, len(latest))
	for _, i := range latest {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ids[a], ids[b]) })
	uIDs, uSeqs, uTs := make([]string, len(order)), make([]int64, len(order)), make([]int64, len(order))
	uAts, uState := make([]time.Time, len(order)), make([]string, len(order))
	for k, i := range order {
		uIDs[k], uSeqs[k], uTs[k], uAts[k], uState[k] = ids[i], seqs[i], tss[i], ats[i], batch[i].State
	}
	// One round trip, not three (BEGIN, the batch, COMMIT): a batch sent outside a
	// transaction runs as one implicit transaction, committed at its end; the server answers
	// the last of it (ReadyForQuery) only after the commit, and Close waits for that.
	err := retryDeadlock(ctx, func() error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO node_observations (node_id, seq, ts_ns, received_at, signer, sig, payload)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[], $6::bytea[], $7::bytea[])
			ON CONFLICT DO NOTHING`, ids, seqs, tss, ats, signers, sigs, payloads)
		// The node's row is written only when what it says changes (its state, the state the
		// node claims) or its mark (last_seq) is markEvery old: its latest observation is in
		// node_observations, and readers take it from there (nodeFrom). A heartbeat that
		// says what the last one said costs the row a lookup, not a new version of it — that
		// update was a third of PostgreSQL's work per heartbeat. The row's mark stays a
		// floor that outlives the observations' retention.
		b.Queue(`UPDATE nodes n SET last_seq = u.seq, last_obs_ts = u.ts, last_obs_at = u.at,
				observed_state = u.state, state = 'up'
			FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[])
				AS u (id, seq, ts, at, state)
			WHERE n.id = u.id AND n.last_seq < u.seq AND n.state <> 'decommissioned'
				AND (n.state <> 'up' OR n.observed_state <> u.state OR n.last_obs_at IS NULL OR n.last_obs_at <= u.at - $6::interval)`,
			uIDs, uSeqs, uTs, uAts, uState, markEvery)
		if len(children) > 0 {
			queueChildren(b, children)
		}
		return s.pool.SendBatch(ctx, b).Close()
	})
	return pgErr("ingest", err)
}

// queueChildren stores observations a ring 1 node made of its app instances: each instance
// is registered as its ring 2 child (if the node hosts the tenant), its observation row is
// kept with the observer's signature, and its row gets the observed state — "up" while the
// observer calls it healthy, "suspect" otherwise.
func queueChildren(b *pgx.Batch, cs []Record) {
	n := len(cs)
	ids, obs, tenants, apps := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, tss, ats := make([]int64, n), make([]int64, n), make([]time.Time, n)
	signers, sigs, payloads, states := make([]string, n), make([][]byte, n), make([][]byte, n), make([]string, n)
	for i, c := range cs {
		ids[i], obs[i], tenants[i], apps[i] = string(c.Node), string(c.Observer), string(c.Tenant), c.App
		seqs[i], tss[i], ats[i] = int64(c.Seq), c.TsNs, c.ReceivedAt
		signers[i], sigs[i], payloads[i], states[i] = c.Signer, c.Sig, c.Payload, c.State
	}
	b.Queue(`INSERT INTO nodes (id, ring, label, supervision_strategy, observation_strategy, parent_node, metadata)
		SELECT c.id, 2, c.app, 'process', 'probe', c.observer, jsonb_build_object('tenant', c.tenant, 'app', c.app)
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS c (id, observer, tenant, app)
		WHERE c.id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
			AND EXISTS (SELECT 1 FROM tenant_hosts h WHERE h.tenant_id = c.tenant AND h.node_id = c.observer)
		ON CONFLICT (id) DO NOTHING`, ids, obs, tenants, apps)
	b.Queue(`INSERT INTO node_observations (node_id, seq, ts_ns, received_at, signer, sig, payload, observer)
		SELECT c.id, c.seq, c.ts, c.at, c.signer, c.sig, c.payload, c.observer
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::text[], $7::bytea[], $8::bytea[])
			AS c (id, observer, seq, ts, at, signer, sig, payload)
		WHERE EXISTS (SELECT 1 FROM nodes n WHERE n.id = c.id AND n.parent_node = c.observer)
		ON CONFLICT DO NOTHING`, ids, obs, seqs, tss, ats, signers, sigs, payloads)
	b.Queue(`UPDATE nodes n SET last_seq = c.seq, last_obs_ts = c.ts, last_obs_at = c.at, observed_state = c.state,
			state = c.judged
		FROM (SELECT *, CASE WHEN state = 'healthy' THEN 'up' ELSE 'suspect' END AS judged
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::text[])
				AS c (id, observer, seq, ts, at, state)) c
		WHERE n.id = c.id AND n.parent_node = c.observer AND n.last_seq < c.seq
			AND (n.state <> c.judged OR n.observed_state <> c.state OR n.last_obs_at IS NULL OR n.last_obs_at <= c.at - $7::interval)`,
		ids, obs, seqs, tss, ats, states, markEvery)
}

// Observations returns up to limit of node's stored observations, newest first, with
// sequence below before (0: from the newest).
func (s *Store) Observations(ctx context.Context, node enjin.NodeID, limit int, before uint64) ([]enjin.SignedObservation, error) {
	if before == 0 || before > 1<<63-1 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT node_id, seq, ts_ns, received_at, signer, sig, payload, coalesce(observer, '')
		FROM node_observations WHERE node_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, string(node), int64(before), limit)
	if err != nil {
		return nil, pgErr("observations", err)
	}
	return collectObservations(rows)
}

// LatestObservations returns every node's newest stored observation (a decommissioned
// node's: the one at its mark), by node id; nodes that have said nothing are left out.
func (s *Store) LatestObservations(ctx context.Context) ([]enjin.SignedObservation, error) {
	rows, err := s.pool.Query(ctx, `SELECT o.node_id, o.seq, o.ts_ns, o.received_at, o.signer, o.sig, o.payload, coalesce(o.observer, '')
		FROM nodes n JOIN LATERAL (SELECT * FROM node_observations o
			WHERE o.node_id = n.id AND o.seq >= n.last_seq AND (n.state <> 'decommissioned' OR o.seq = n.last_seq)
			ORDER BY o.seq DESC LIMIT 1) o ON true
		ORDER BY n.id LIMIT 10000`)
	if err != nil {
		return nil, pgErr("latest observations", err)
	}
	return collectObservations(rows)
}

// ObservationsAfter pages through every stored observation in (node, seq) order, starting
// after the given position; verify uses it to re-check the whole store.
func (s *Store) ObservationsAfter(ctx context.Context, node enjin.NodeID, seq uint64, limit int) ([]enjin.SignedObservation, error) {
	rows, err := s.pool.Query(ctx, `SELECT node_id, seq, ts_ns, received_at, signer, sig, payload, coalesce(observer, '')
		FROM node_observations WHERE (node_id, seq) > ($1, $2) ORDER BY node_id, seq LIMIT $3`, string(node), int64(seq), limit)
	if err != nil {
		return nil, pgErr("observations", err)
	}
	return collectObservations(rows)
}

func collectObservations(rows pgx.Rows) ([]enjin.SignedObservation, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (enjin.SignedObservation, error) {
		var o enjin.SignedObservation
		var id, observer string
		var seq int64
		var sig, payload []byte
		err := r.Scan(&id, &seq, &o.TsNs, &o.ReceivedAt, &o.Signer, &sig, &payload, &observer)
		o.Node, o.Seq, o.Observer, o.Sig, o.Payload = enjin.NodeID(id), uint64(seq), enjin.NodeID(observer), sig, payload
		return o, err
	})
	return out, pgErr("observations", err)
}

const day = 24 * time.Hour

// EnsurePartitions creates the daily observation partitions from yesterday to two days
// ahead. Ring 0 runs it at start and hourly.
func (s *Store) EnsurePartitions(ctx context.Context) error {
	today := time.Now().UTC().Truncate(day)
	// Under the migration lock: several ring 0 members do this at once (IF NOT EXISTS does
	// not serialize them).
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return pgErr("partition lock", err)
		}
		for d := -1; d <= 2; d++ {
			from := today.Add(time.Duration(d) * day)
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF node_observations FOR VALUES FROM (%d) TO (%d)`,
				partitionName(from), from.UnixNano(), from.Add(day).UnixNano())
			if _, err := tx.Exec(ctx, sql); err != nil {
				return pgErr("create partition "+partitionName(from), err)
			}
		}
		return nil
	})
}

func partitionName(day time.Time) string { return "node_observations_" + day.Format("20060102") }

// ApplyRetention drops observation partitions that end more than the retention setting
// (observation_retention_days) before now, and returns their names.
func (s *Store) ApplyRetention(ctx context.Context, now time.Time) ([]string, error) {
	var days int
	if err := s.pool.QueryRow(ctx, `SELECT (value #>> '{}')::int FROM settings WHERE key = 'observation_retention_days'`).Scan(&days); err != nil {
		return nil, pgErr("retention setting", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'node_observations'::regclass`)
	if err != nil {
		return nil, pgErr("list partitions", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, pgErr("list partitions", err)
	}
	cutoff := now.UTC().Add(-time.Duration(days) * day)
	var dropped []string
	for _, n := range names {
		d, err := time.Parse("20060102", strings.TrimPrefix(n, "node_observations_"))
		if err != nil || !d.Add(day).Before(cutoff) {
			continue
		}
		if _, err := s.pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{n}.Sanitize()); err != nil {
			return dropped, pgErr("drop partition "+n, err)
		}
		dropped = append(dropped, n)
	}
	return dropped, nil
}

// SetRetention sets how many days of observations are kept.
func (s *Store) SetRetention(ctx context.Context, days int) error {
	if days < 1 {
		return fmt.Errorf("inventory: retention %d days: %w", days, ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `UPDATE settings SET value = to_jsonb($1::int) WHERE key = 'observation_retention_days'`, days)
	return pgErr("set retention", err)
}
