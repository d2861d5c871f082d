package inventory

import "context"

// EndLeaderSessions ends member's leader session from the database's side, as PostgreSQL
// does when it loses sight of the member.
func (s *Store) EndLeaderSessions(ctx context.Context, member string) error {
	_, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
		"enjin ring0 leader "+member)
	return err
}
