package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"enjin"
)

// CreateJoinToken issues a one-time token with which node (already registered, with the
// external strategy) can join within ttl. Only the token's hash is stored.
func (s *Store) CreateJoinToken(ctx context.Context, node enjin.NodeID, ttl time.Duration) (string, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(tok))
	_, err := s.pool.Exec(ctx, `INSERT INTO join_tokens (token_hash, node_id, expires_at) VALUES ($1, $2, now() + $3::interval)`,
		h[:], string(node), fmt.Sprintf("%d milliseconds", ttl.Milliseconds()))
	if err != nil {
		return "", pgErr("create join token", err)
	}
	return tok, nil
}

// RedeemJoinToken uses token once: it records the joining node's keys and returns the node.
// An unknown, used or expired token, or one for a decommissioned node, is ErrNotFound.
func (s *Store) RedeemJoinToken(ctx context.Context, token, authPub, attestPub string) (Node, error) {
	h := sha256.Sum256([]byte(token))
	var out Node
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var node string
		err := tx.QueryRow(ctx, `UPDATE join_tokens t SET used_at = now()
			WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
				AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = t.node_id AND n.state = 'decommissioned')
			RETURNING node_id`, h[:]).Scan(&node)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET auth_pub = $2, attest_pub = $3, version = version + 1, updated_at = now()
			WHERE id = $1`, node, authPub, attestPub); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO node_keys (node_id, attest_pub) VALUES ($1, $2) ON CONFLICT DO NOTHING`, node, attestPub); err != nil {
			return err
		}
		if out, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeCols+` FROM `+nodeFrom+` WHERE n.id = $1`, node)); err != nil {
			return err
		}
		return recordHistory(ctx, tx, "node", node, out.Version, out, false)
	})
	return out, pgErr("join", err)
}

// Credential is an issued user JWT, remembered so it can be listed and revoked.
type Credential struct {
	JTI       string     `json:"jti"`
	Account   string     `json:"account"`
	Subject   string     `json:"subject"`
	Node      string     `json:"node,omitempty"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// RecordCredential remembers an issued credential.
func (s *Store) RecordCredential(ctx context.Context, c Credential) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO credentials (jti, account, subject, node_id, issued_at, expires_at)
		VALUES ($1, $2, $3, nullif($4, ''), $5, $6) ON CONFLICT (jti) DO NOTHING`,
		c.JTI, c.Account, c.Subject, c.Node, c.IssuedAt, c.ExpiresAt)
	return pgErr("record credential", err)
}

// RevokeCredentials marks every credential of user subject revoked and returns how many.
func (s *Store) RevokeCredentials(ctx context.Context, subject string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE credentials SET revoked_at = now() WHERE subject = $1 AND revoked_at IS NULL`, subject)
	if err != nil {
		return 0, pgErr("revoke credentials", err)
	}
	return tag.RowsAffected(), nil
}
