package test

import (
	"bufio"
	"errors"
	"os/exec"
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
}
