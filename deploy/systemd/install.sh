#!/usr/bin/env bash
# Installs enjin as system services where systemd runs — deploy/bootstrap.sh --systemd runs
# this once it has installed what enjin needs and built ./enjin (run it from the repository
# root, as root):
#
#   - /usr/local/bin/enjin, and the enjin system user ring 0 runs as;
#   - a database and role "enjin" on the machine's PostgreSQL (its postgresql service),
#     reached over its unix socket with peer authentication (no password anywhere), named in
#     /etc/enjin/ring0.env;
#   - enjin-ring0.service, started and waited for (its API on 127.0.0.1:7070);
#   - this machine registered as ring 1 node NODE (default: the short host name), a one-time
#     join token for it in /etc/enjin/join.token (0600), ring 0's API in /etc/enjin/ring1.env;
#   - enjin-ring1.service, started: the node joins and heartbeats.
#
#   deploy/systemd/install.sh [NODE]
set -euo pipefail

say() { echo "install: $*"; }
die() {
	echo "install: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root"
[ $# -le 1 ] || die "usage: deploy/systemd/install.sh [NODE]"
node=${1:-$(hostname -s | tr 'A-Z_' 'a-z-')}
[ -x ./enjin ] || die "no ./enjin here: run it from the repository root after building (deploy/bootstrap.sh --systemd does)"
command -v systemctl >/dev/null || die "no systemctl"
api=http://127.0.0.1:7070

install -m 0755 ./enjin /usr/local/bin/enjin
id enjin >/dev/null 2>&1 || useradd --system --home-dir /var/lib/enjin --no-create-home --shell /usr/sbin/nologin enjin
install -d -m 0755 /etc/enjin

systemctl start postgresql
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'enjin'" | grep -q 1; then
	runuser -u postgres -- createuser enjin
fi
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'enjin'" | grep -q 1; then
	runuser -u postgres -- createdb -O enjin enjin
fi
sock=$(runuser -u postgres -- psql -tAc "SHOW unix_socket_directories" | cut -d, -f1)
umask 077
echo "ENJIN_DATABASE_URL=postgres:///enjin?host=${sock:-/var/run/postgresql}" >/etc/enjin/ring0.env

install -m 0644 deploy/systemd/enjin-ring0.service deploy/systemd/enjin-ring1.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now enjin-ring0.service
say "enjin-ring0 started; waiting for its API at $api"
tok=/var/lib/enjin/ring0/admin.token
for _ in $(seq 120); do
	[ -s "$tok" ] && curl -fsS -o /dev/null "$api/healthz" 2>/dev/null && break
	sleep 0.5
done
[ -s "$tok" ] || die "ring 0 did not come up: journalctl -u enjin-ring0"
hdr=$(mktemp)
trap 'rm -f "$hdr"' EXIT
printf 'Authorization: Bearer %s\n' "$(cat "$tok")" >"$hdr"

if [ ! -e /var/lib/enjin/ring1/ring1/node.json ]; then
	curl -fsS -o /dev/null -H @"$hdr" -H 'Content-Type: application/json' \
		-d "{\"id\":\"$node\",\"ring\":1,\"label\":\"systemd\",\"supervision_strategy\":\"external\",\"observation_strategy\":\"self\"}" \
		"$api/v1/nodes" || say "node $node registered before"
	curl -fsS -H @"$hdr" -H 'Content-Type: application/json' -d '{"ttl_seconds":600}' \
		-o /etc/enjin/join.token "$api/v1/nodes/$node/join-token" || die "no join token for $node"
fi
echo "ENJIN_RING0=$api" >/etc/enjin/ring1.env
systemctl enable --now enjin-ring1.service
say "enjin-ring1 started as node $node; watch it join: curl -H @FILE $api/v1/nodes/$node (FILE: an Authorization header with $tok)"
