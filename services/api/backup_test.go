package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"enjin/services/api"
)

// withBackup makes the API's backups: a fixed stream.
func withBackup(c *api.Config) {
	c.Backup = func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "a backup")
		return err
	}
}

// backupSteps issue the backup credential, use it where it may go and where it may not, and
// revoke it; the system tenant's name is taken by no one else.
func backupSteps() []step {
	asBackup := []string{"Authorization", "Bearer {backup}"}
	steps := []step{
		{name: "reader issues the backup credential", method: "POST", path: "/v1/system/backups", auth: asBob, status: 403},
		{name: "issue the backup credential", method: "POST", path: "/v1/system/backups", auth: asAdmin, status: 201,
			save: map[string]string{"backup": "token"}, check: want("tenant", "enjin")},
		{name: "the system tenant is made", method: "GET", path: "/v1/tenants/enjin", auth: asAdmin, status: 200},
		{name: "the backup credential fetches a backup", method: "GET", path: "/v1/backup", hdr: asBackup, status: 200, page: "application/vnd.enjin.backup",
			check: func(t *testing.T, r response, _ map[string]string) {
				if string(r.body) != "a backup" || !strings.HasPrefix(r.header.Get("Content-Disposition"), `attachment; filename="enjin-`) {
					t.Errorf("backup answer: %q, %v", r.body, r.header)
				}
			}},
		{name: "the admin fetches a backup", method: "GET", path: "/v1/backup", auth: asAdmin, status: 200, page: "application/vnd.enjin.backup"},
		{name: "a reader fetches a backup", method: "GET", path: "/v1/backup", auth: asBob, status: 403},
		{name: "nobody fetches a backup", method: "GET", path: "/v1/backup", status: 401},
		{name: "a forged backup credential", method: "GET", path: "/v1/backup", hdr: []string{"Authorization", "Bearer eb_forged"}, status: 401},
		{name: "create tenant enjin", method: "POST", path: "/v1/tenants", auth: asAdmin, body: `{"name":"enjin"}`, status: 409, code: "reserved"},
		{name: "a tenant token for enjin", method: "POST", path: "/v1/tenants/enjin/tokens", auth: asAdmin, body: `{}`, status: 409, code: "reserved"},
	}
	// Nothing else, whatever it is.
	for _, r := range [][3]string{{"GET", "/v1/tenants", ""}, {"GET", "/v1/tenants/enjin", ""}, {"GET", "/v1/nodes", ""},
		{"GET", "/v1/members", ""}, {"GET", "/v1/placements", ""}, {"POST", "/v1/system/backups", ""}, {"DELETE", "/v1/system/backups", ""},
		{"POST", "/v1/tenants", `{"name":"thief"}`}, {"POST", "/v1/tenants/enjin/tokens", `{}`}, {"POST", "/v1/creds/ops", `{"name":"x"}`},
		{"GET", "/v1/observations/latest", ""}, {"GET", "/v1/tenants/enjin/apps", ""}} {
		steps = append(steps, step{name: "the backup credential on " + r[0] + " " + r[1], method: r[0], path: r[1],
			hdr: asBackup, body: r[2], status: 403, code: "forbidden"})
	}
	return append(steps,
		step{name: "issue it again", method: "POST", path: "/v1/system/backups", auth: asAdmin, status: 201, save: map[string]string{"backup2": "token"}},
		step{name: "the earlier credential is revoked", method: "GET", path: "/v1/backup", hdr: asBackup, status: 401},
		step{name: "revoke the backup credential", method: "DELETE", path: "/v1/system/backups", auth: asAdmin, status: 204},
		step{name: "the revoked credential", method: "GET", path: "/v1/backup", hdr: []string{"Authorization", "Bearer {backup2}"}, status: 401},
		step{name: "revoke it again", method: "DELETE", path: "/v1/system/backups", auth: asAdmin, status: 404},
		step{name: "a reader revokes it", method: "DELETE", path: "/v1/system/backups", auth: asBob, status: 403},
	)
}

// TestBackupCredential: the backup credential fetches backups and reaches nothing else; issuing
// a new one revokes the old; the system tenant's name is reserved.
func TestBackupCredential(t *testing.T) {
	e := newEnvWith(t, api.Timeouts{}, withBackup)
	runSteps(t, e, backupSteps())
	if r := e.do(t, "GET", "/v1/backup", nil, "Authorization", asAdmin); r.status != http.StatusOK {
		t.Fatalf("GET /v1/backup as the admin: %d", r.status)
	}
	bare := newEnv(t)
	if r := bare.do(t, "GET", "/v1/backup", nil, "Authorization", asAdmin); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/backup from a ring 0 that makes none: %d %s, want 503", r.status, r.body)
	}
}
