#!/usr/bin/env bash
# Makes sure libvirtd runs on this machine, for ring 1's VMs (supervisors/libvirt) and their
# tests: installs libvirt and QEMU from Debian if a program is missing, creates the user QEMU
# runs as, starts virtlogd and libvirtd if their sockets do not answer, and waits until
# /var/run/libvirt/libvirt-sock does. Every step is skipped when already done, so test/run
# and deploy/bootstrap.sh call it every time; it prints nothing when there is nothing to do.
#
#   deploy/libvirt.sh            exit 0 once qemu:///system answers, else one line on stderr
#
# QEMU runs as the unprivileged user libvirt-qemu (libvirt's Debian default), never as root,
# and /etc/libvirt/qemu.conf is left as it is (but where /dev/kvm is root's alone: see below). Found on Debian 12 with libvirt 9.0 (there is
# no AppArmor or SELinux here, so DAC is libvirt's only security driver):
#  - dynamic_ownership (on by default) chowns what a domain names (disks, kernel, initrd,
#    fw_cfg files) to libvirt-qemu while it runs and gives it back afterwards, so callers'
#    files may stay root's, mode 0600;
#  - libvirt does not touch directories: every one on those paths must be searchable by
#    others (o+x); under a 0700 directory such as a t.TempDir, the start fails with
#    "Cannot access storage file … (as uid:…): Permission denied";
#  - a qcow2 overlay's backing file is chowned too and, unlike the overlay, never given
#    back, which would leave a base that many guests share writable by all of them. So
#    supervisors/libvirt spells the chain out in the domain XML with relabel='no' on the
#    base, and the base must be readable by others (0644).
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin" # libvirtd and virtlogd live there, off a user's PATH

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
sock=/var/run/libvirt/libvirt-sock

fail() {
	echo "deploy/libvirt.sh: $*" >&2
	exit 1
}

# libvirtd_answers reports whether libvirtd serves qemu:///system on its socket;
# virtlogd_answers, whether virtlogd (which keeps the guests' console logs) answers on its
# admin socket; answers, both.
libvirtd_answers() {
	[ -S "$sock" ] && "${sudo[@]}" timeout 5 virsh -q -c qemu:///system uri >/dev/null 2>&1
}
virtlogd_answers() {
	"${sudo[@]}" timeout 5 virt-admin -q -c virtlogd:///system version >/dev/null 2>&1
}
answers() { virtlogd_answers && libvirtd_answers; }

# The packages, without libvirt-daemon-system (which pulls systemd in on Debian). iptables
# and dnsmasq-base must be there before libvirtd first starts: its network driver looks for
# them once, at start.
if ! command -v libvirtd >/dev/null || ! command -v qemu-system-x86_64 >/dev/null ||
	! command -v qemu-img >/dev/null || ! command -v virsh >/dev/null; then
	echo "deploy/libvirt.sh: installing libvirt and qemu (apt-get; a minute or two)…"
	log=$(mktemp)
	# Other users of the machine may hold dpkg's lock for a while: wait for it, not fail.
	if ! { "${sudo[@]}" apt-get update -qq &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			-o DPkg::Lock::Timeout=600 --no-install-recommends \
			libvirt-daemon libvirt-clients qemu-system-x86 qemu-utils iptables nftables \
			dnsmasq-base; } >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		fail "installing libvirt and qemu failed"
	fi
	rm -f "$log"
	command -v libvirtd >/dev/null || fail "libvirt installed but no libvirtd on PATH"
fi

# libvirt's Debian default runs qemu as libvirt-qemu:libvirt-qemu; the package that would
# create them (libvirt-daemon-system) is the one we leave out.
getent group libvirt-qemu >/dev/null || "${sudo[@]}" groupadd -r libvirt-qemu
id -u libvirt-qemu >/dev/null 2>&1 ||
	"${sudo[@]}" useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

answers && exit 0

# Two callers at once (test/run in two worktrees) must not start two daemons. The daemons
# are started without the lock's descriptor (9>&-), or they would hold it for good.
lock=/tmp/enjin-libvirt.lock
exec 9>>"$lock"
flock -w 120 9 || fail "another deploy/libvirt.sh held $lock for 2 minutes"
answers && exit 0

# alive PIDFILE NAME reports whether the process the file names is running and is NAME: a
# daemon that died leaves its PID file behind, and the PID in it may since have gone to
# another process (PIDs wrap at 32,768 here within minutes of tests) — taking that for the
# daemon would leave it unstarted and wait out the minute below for nothing.
alive() {
	local pid
	pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

if [ -d /run/systemd/system ] && systemctl cat libvirtd.service >/dev/null 2>&1; then
	"${sudo[@]}" systemctl start virtlogd.service libvirtd.service 9>&- ||
		fail "systemctl start libvirtd failed; see journalctl -u libvirtd"
else
	# libvirt-daemon-system would also have made the log directory; the daemons make the rest.
	"${sudo[@]}" mkdir -p /var/log/libvirt
	# virtlogd keeps the domains' console logs; libvirtd hands it their output.
	if ! virtlogd_answers && ! alive /run/virtlogd.pid virtlogd; then
		"${sudo[@]}" virtlogd -d -p /run/virtlogd.pid 9>&- || fail "virtlogd did not start"
	fi
	if ! libvirtd_answers && ! alive /run/libvirtd.pid libvirtd; then
		if [ -c /dev/kvm ] && ! "${sudo[@]}" setpriv --reuid=libvirt-qemu --regid=libvirt-qemu --init-groups \
			sh -c 'test -r /dev/kvm && test -w /dev/kvm'; then
			# A /dev/kvm only root may use (a machine without udev) is KVM that QEMU, which runs
			# as libvirt-qemu, cannot have. libvirtd would probe QEMU's capabilities with KVM,
			# find the device closed to QEMU's user, and probe again at every call (~30 s each).
			# So it runs in a mount namespace of its own where the device is an empty file and
			# sees no KVM, as QEMU would not; supervisors/libvirt's HasKVM says no too, so guests
			# are emulated (TCG). There its qemu.conf also turns off the guests' private /dev,
			# which would try to carry that file's mount into each guest's and fail; QEMU still
			# runs as libvirt-qemu, with only the files libvirt hands it.
			"${sudo[@]}" touch /run/enjin-no-kvm
			# (A qemu.conf to mount over: libvirt's defaults, where the package made none.)
			[ -e /etc/libvirt/qemu.conf ] || { "${sudo[@]}" mkdir -p /etc/libvirt &&
				echo "# libvirt's defaults (made empty by enjin's deploy/libvirt.sh)" | "${sudo[@]}" tee /etc/libvirt/qemu.conf >/dev/null; }
			"${sudo[@]}" sh -c '{ cat /etc/libvirt/qemu.conf; echo "namespaces = [ ]"; } >/run/enjin-qemu.conf'
			"${sudo[@]}" unshare --mount --propagation private sh -c \
				'mount --bind /run/enjin-no-kvm /dev/kvm && mount --bind /run/enjin-qemu.conf /etc/libvirt/qemu.conf &&
				 exec libvirtd -d -p /run/libvirtd.pid' 9>&- ||
				fail "libvirtd did not start"
		else
			"${sudo[@]}" libvirtd -d -p /run/libvirtd.pid 9>&- || fail "libvirtd did not start"
		fi
	fi
fi

# A first start can take ~8 s (libvirtd probes qemu's capabilities and caches them).
for _ in $(seq 600); do
	answers && exit 0
	sleep 0.1
done
virtlogd_answers || fail "virtlogd started but did not answer on /var/run/libvirt/virtlogd-admin-sock within 60 s"
fail "libvirtd started but $sock did not answer qemu:///system within 60 s"
