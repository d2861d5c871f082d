package test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"enjin/test/harness"
)

// TestSystemdUnits checks deploy/systemd's units as systemd itself reads them: each verifies
// (systemd-analyze verify, with the binary it starts at this test's enjin), its command line
// parses as enjin's own (the same arguments with --help exit 0), ring 0's exposure score
// (systemd-analyze security --offline) is at most 2.5 of 10, and bootstrap.sh --systemd
// refuses, in one line and before it installs anything, a machine systemd does not run.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing (apt-get install systemd)")
	}
	bin := harness.Binary(t)
	dir := t.TempDir()
	for _, name := range []string{"enjin-ring0.service", "enjin-ring1.service"} {
		b, err := os.ReadFile(filepath.Join(moduleRoot(t), "deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		unit := strings.ReplaceAll(string(b), "/usr/local/bin/enjin", bin)
		unit = strings.ReplaceAll(unit, "EnvironmentFile=/etc/enjin/", "EnvironmentFile=-/etc/enjin/") // not on this machine
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Fatalf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
		args := strings.Fields(execStart(t, unit))[1:]
		for i, a := range args {
			if a == "${ENJIN_RING0}" {
				args[i] = "http://127.0.0.1:7070"
			}
		}
		if out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput(); err != nil {
			t.Fatalf("%s's command line does not parse: enjin %v: %v\n%s", name, args, err, out)
		}
		out, _ := exec.Command("systemd-analyze", "security", "--offline=true", p).CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("systemd-analyze security %s:\n%s", name, out)
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("%s: verified; exposure %s %s", name, m[1], m[2])
		if name == "enjin-ring0.service" && score > 2.5 {
			t.Fatalf("ring 0's exposure %v is over 2.5:\n%s", score, out)
		}
	}
	if pid1, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(pid1)) == "systemd" {
		t.Log("systemd runs this machine: bootstrap.sh --systemd would install the services; not run")
		return
	}
	out, err := exec.Command(filepath.Join(moduleRoot(t), "deploy", "bootstrap.sh"), "--systemd").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "systemd does not run this machine") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("bootstrap.sh --systemd without systemd: %v\n%s", err, out)
	}
}

// execStart is a unit's ExecStart command line.
func execStart(t *testing.T, unit string) string {
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			return v
		}
	}
	t.Fatal("no ExecStart")
	return ""
}
