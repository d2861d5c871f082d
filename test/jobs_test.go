package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestRunJob runs one-off jobs in a deployed app's sandbox through the CLI, as a user would:
// stdout and stderr stream to the CLI's own, the environment and HOME are the app's, it runs
// as the app's uid (not root), and the CLI exits with the job's status; a file the job
// writes in HOME is there for the app's instances; its lines are in the app's log as run.N;
// Ctrl-C stops the job (nothing of it is left running); an unknown app is one line with its
// 404, a missing command a usage error, an overlong one a 422.
func TestRunJob(t *testing.T) {
	c := newCloud(t)
	c.start()
	c.deploySamples("acme/web")
	bin := harness.Binary(t)

	cmd := exec.Command(bin, "run", "acme/web", "--state-dir", c.state, "--",
		`echo out; echo err >&2; echo "$ENJIN_APP $HOME $(id -u)"; echo kept > $HOME/job-was-here; exit 3`)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("enjin run: %v, want exit status 3\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || lines[0] != "out" || !strings.HasPrefix(lines[1], "web /home/app ") || strings.HasSuffix(lines[1], " 0") {
		t.Fatalf("the job's stdout: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "err\n") || !strings.Contains(stderr.String(), "the job exited with status 3") {
		t.Fatalf("the job's stderr: %q", stderr.String())
	}
	t.Logf("enjin run → exit 3 in %v; stdout %q", time.Since(t0).Round(time.Millisecond), lines)
	if out, err := exec.Command(bin, "run", "acme/web", "--state-dir", c.state, "--", "cat $HOME/job-was-here").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "kept" {
		t.Fatalf("HOME not kept from one job to the next: %v %q", err, out)
	}
	if out := c.cli("logs", "acme/web"); !strings.Contains(out, "run.") || !strings.Contains(out, "out") {
		t.Fatalf("the job's lines are not in the app's log:\n%s", out)
	}

	// Ctrl-C stops it: nothing of the job stays.
	long := exec.Command(bin, "run", "acme/web", "--state-dir", c.state, "--", "echo started; exec sleep 313")
	pipe, _ := long.StdoutPipe()
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(pipe).ReadString('\n'); line != "started\n" {
		t.Fatalf("the long job said %q", line)
	}
	long.Process.Signal(syscall.SIGINT)
	if err := long.Wait(); err == nil {
		t.Fatal("an interrupted run exited 0")
	}
	if !harness.Poll(10*time.Second, func() bool { return exec.Command("pgrep", "-f", "sleep 313").Run() != nil }) {
		t.Fatal("the interrupted job still runs")
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "acme/nosuch", "--state-dir", c.state, "--", "true"}, 1, "(404)"},
		{[]string{"run", "acme/web", "--state-dir", c.state}, 2, "want TENANT/APP -- COMMAND"},
		{[]string{"run", "acme/web", "--state-dir", c.state, "--", strings.Repeat("x", 5000)}, 1, "(422)"},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("enjin %.120v: %v, want exit %d and one line saying %q:\n%s", tc.args, err, tc.code, tc.want, out)
		}
	}

	// Destroying the app stops its running jobs (their sandboxes hold its HOME) and succeeds.
	long = exec.Command(bin, "run", "acme/web", "--state-dir", c.state, "--", "echo started; cd $HOME; exec sleep 317")
	var tail strings.Builder
	long.Stderr = &tail
	pipe, _ = long.StdoutPipe()
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(pipe).ReadString('\n'); line != "started\n" {
		t.Fatalf("the long job said %q", line)
	}
	t0 = time.Now()
	c.cli("apps", "destroy", "acme/web")
	if err := long.Wait(); err == nil || !strings.Contains(tail.String(), "the app was destroyed") {
		t.Errorf("a job of a destroyed app: %v, stderr %q; want it stopped, saying why", err, tail.String())
	}
	if exec.Command("pgrep", "-f", "sleep 317").Run() == nil {
		t.Error("a job of a destroyed app still runs")
	}
	t.Logf("destroyed the app with a job running in %v: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(tail.String()))
}

// TestCronJobs deploys an app whose enjin.json schedules jobs (real cron ticks, @every 1s):
// they run on their own in the app's sandbox, their lines reach the app's log as cron.N, and
// `enjin apps cron` shows each one's runs and last exit status (0, and 7 for the one that
// fails); a release without them stops them; a schedule cron cannot read is refused at deploy
// in one line naming the field.
func TestCronJobs(t *testing.T) {
	c := newCloud(t)
	c.start()
	c.cli("tenants", "create", "acme")
	dir := t.TempDir()
	sample, _ := os.ReadFile(filepath.Join(c.sample, "sampleapp"))
	os.WriteFile(filepath.Join(dir, "sampleapp"), sample, 0o755)
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./sampleapp\n"), 0o644)
	write := func(manifest string) {
		os.WriteFile(filepath.Join(dir, "enjin.json"), []byte(manifest), 0o644)
	}
	write(`{"health": "/healthz", "cron": {"tick": {"schedule": "@every 1s", "command": "echo tick >> $HOME/ticks; echo ticked $(wc -l < $HOME/ticks)"},
		"fail": {"schedule": "@every 1s", "command": "exit 7"}, "later": {"schedule": "0 3 * * *", "command": "true"}}}`)
	c.cli("apps", "deploy", "acme/web", dir, "-q")
	var st struct {
		Cron []struct {
			Name string
			Runs int
			Next time.Time
			Last *struct{ Exit int }
		}
	}
	byName := map[string]int{}
	if !harness.Poll(30*time.Second, func() bool {
		st.Cron = nil
		if json.Unmarshal([]byte(c.cli("apps", "cron", "acme/web", "-o", "json")), &st) != nil || len(st.Cron) != 3 {
			return false
		}
		for i, j := range st.Cron {
			byName[j.Name] = i
		}
		tick, fail := st.Cron[byName["tick"]], st.Cron[byName["fail"]]
		return tick.Runs >= 2 && tick.Last != nil && tick.Last.Exit == 0 && fail.Last != nil && fail.Last.Exit == 7
	}) {
		t.Fatalf("the scheduled jobs did not run as scheduled: %+v", st)
	}
	if later := st.Cron[byName["later"]]; later.Runs != 0 || later.Next.Hour() != 3 {
		t.Fatalf("the 3 am job: %+v", later)
	}
	if out := c.cli("logs", "acme/web"); !strings.Contains(out, "cron.") || !strings.Contains(out, "ticked 2") {
		t.Fatalf("the scheduled jobs' lines are not in the app's log:\n%s", out)
	}
	table := c.cli("apps", "cron", "acme/web")
	t.Logf("enjin apps cron acme/web:\n%s", table)

	// A release without them stops them.
	write(`{"health": "/healthz"}`)
	c.cli("apps", "deploy", "acme/web", dir, "-q")
	st.Cron = nil
	if out := c.cli("apps", "cron", "acme/web", "-o", "json"); json.Unmarshal([]byte(out), &st) != nil || len(st.Cron) != 0 || !strings.Contains(out, `"cron"`) {
		t.Fatalf("jobs left after a release without them: %s", out)
	}

	write(`{"cron": {"tick": {"schedule": "every now and then", "command": "true"}}}`)
	out, err := exec.Command(harness.Binary(t), "apps", "deploy", "acme/web", dir, "-q", "--state-dir", c.state).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cron.tick.schedule") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("a bad schedule: %v\n%s", err, out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))
}
