package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"enjin"
	"enjin/services/inventory"
)

// Backup writes a backup of the cloud to w as it is made (`enjin backup`'s format).
type Backup func(ctx context.Context, w io.Writer) error

// backupTokens accepts the backup credential (Bearer eb_…): an identity that may call
// GET /v1/backup and nothing else.
type backupTokens struct{ store *inventory.Store }

func (c backupTokens) Check(r *http.Request) (Identity, bool, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !strings.HasPrefix(tok, inventory.BackupTokenPrefix) {
		return Identity{}, false, nil
	}
	valid, err := c.store.IsBackupToken(r.Context(), tok)
	if err != nil || !valid {
		return Identity{}, false, nil // not the backup credential: the other checkers decide
	}
	return Identity{Name: "backups", Backup: true}, true, nil
}

// systemBackups is what issuing the backup credential answers.
type systemBackups struct {
	Tenant enjin.TenantID `json:"tenant"` // the system tenant, whose job holds the credential
	Token  string         `json:"token"`  // the credential: GET /v1/backup only
}

func (a *API) backupRoutes() []route {
	return []route{
		{method: "GET", path: "/v1/backup", access: admin, backupOK: true, summary: "A backup of the whole cloud (the inventory, the trust chain, app packages, releases and HOME data), streamed as it is made, in the format `enjin restore` reads; for the admin and the backup credential, which may call nothing else",
			rawOut: "application/vnd.enjin.backup", status: http.StatusOK, serve: a.streamBackup},
		{method: "POST", path: "/v1/system/backups", access: admin, summary: "Issue the backup credential (revoking any earlier one) and make the system tenant, whose scheduled job holds it, if it is missing",
			status: http.StatusCreated, out: systemBackups{}, serve: a.issueBackupToken},
		{method: "DELETE", path: "/v1/system/backups", access: admin, summary: "Revoke the backup credential",
			status: http.StatusNoContent, serve: a.revokeBackupToken},
	}
}

func (a *API) streamBackup(c *call) error {
	if a.backup == nil {
		return &apiError{http.StatusServiceUnavailable, "unavailable", "this ring 0 makes no backups"}
	}
	// As long as it takes, but each write must make progress (a stalled reader is cut).
	w, done := streaming(c.w, c.r)
	defer done()
	w.Header().Set("Content-Type", "application/vnd.enjin.backup")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="enjin-%s.enjin"`, time.Now().UTC().Format("20060102T150405Z")))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := a.backup(c.ctx, w); err != nil {
		// The status is sent: the truncated stream is the caller's sign (a backup ends with
		// its manifest, which restore checks every entry against).
		a.log.Error("backup not sent whole", "caller", c.id.Name, "err", err)
		panic(http.ErrAbortHandler)
	}
	a.log.Info("backup sent", "caller", c.id.Name)
	return nil
}

func (a *API) issueBackupToken(c *call) error {
	if _, err := a.store.GetTenant(c.ctx, enjin.SystemTenant); errors.Is(err, inventory.ErrNotFound) {
		if _, err := a.ring0.CreateTenant(c.ctx, enjin.SystemTenant, map[string]any{"system": true}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	tok, err := a.store.IssueBackupToken(c.ctx)
	if err != nil {
		return err
	}
	a.log.Info("backup credential issued", "by", c.id.Name)
	a.reply(c.w, http.StatusCreated, systemBackups{Tenant: enjin.SystemTenant, Token: tok})
	return nil
}

func (a *API) revokeBackupToken(c *call) error {
	had, err := a.store.RevokeBackupTokens(c.ctx)
	if err != nil {
		return err
	}
	if !had {
		return notFound("no backup credential is issued")
	}
	a.log.Info("backup credential revoked", "by", c.id.Name)
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
