package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// BackupTokenPrefix starts every backup token, so checkers can tell them from others.
const BackupTokenPrefix = "eb_"

// IssueBackupToken issues the backup credential, revoking any issued before: a bearer token
// that may only fetch backups (GET /v1/backup). Only its hash is stored.
func (s *Store) IssueBackupToken(ctx context.Context) (string, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	tok := BackupTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(tok))
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", pgErr("backup token", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM backup_tokens`); err != nil {
		return "", pgErr("backup token", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO backup_tokens (token_hash) VALUES ($1)`, h[:]); err != nil {
		return "", pgErr("backup token", err)
	}
	return tok, pgErr("backup token", tx.Commit(ctx))
}

// RevokeBackupTokens revokes the backup credential; it reports whether there was one.
func (s *Store) RevokeBackupTokens(ctx context.Context) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM backup_tokens`)
	if err != nil {
		return false, pgErr("backup token", err)
	}
	return tag.RowsAffected() > 0, nil
}

// IsBackupToken reports whether tok is the backup credential.
func (s *Store) IsBackupToken(ctx context.Context, tok string) (bool, error) {
	h := sha256.Sum256([]byte(tok))
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM backup_tokens WHERE token_hash = $1)`, h[:]).Scan(&ok)
	return ok, pgErr("backup token", err)
}
