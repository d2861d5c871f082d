package ring0

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"enjin/services/backup"
)

// backup writes a backup of this member's state directory and the inventory to w, for
// GET /v1/backup: what `enjin backup` makes on the machine, streamed to whoever may fetch it
// (the admin, or the system tenant's scheduled job through its node's relay).
func (r *Ring0) backup(ctx context.Context, w io.Writer) error {
	src := backup.Source{StateDir: r.cfg.StateDir, DatabaseURL: r.cfg.DatabaseURL, Enjin: r.cfg.Version, Logger: r.log}
	if _, err := os.Stat(filepath.Join(r.cfg.StateDir, "postgres", "data")); err == nil {
		src.DatabaseURL = "" // the managed one (`enjin up`'s): the backup says so, restore makes one
	}
	_, err := backup.Write(ctx, w, src)
	return err
}
