package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"enjin/services/apphost"
	"enjin/test/harness"
)

// readmeStep says how TestReadme runs one command line of the README: what its output must
// contain, and, for a command that runs until stopped, for how long it runs (it is then
// stopped, and what it printed meanwhile must contain want).
type readmeStep struct {
	want     string        // a fragment of its output; "" checks only the exit status
	runFor   time.Duration // a command that does not end by itself: stopped after this
	skip     string        // why this line is not run here
	waitNode string        // before running, wait until this node is up
	retryFor time.Duration // run it again until its output has want, for this long (a VM booting)
}

// readmeSteps has a rule for every command line of every shell block of the README, by the
// line's first words: a line the table does not know fails the test, so a command added to
// the README is a command a test runs.
var readmeSteps = map[string]readmeStep{
	"deploy/bootstrap.sh": {}, // the main job: run by the test itself, first, in the background
	"./test/run":          {skip: "this test is part of what it runs"},
	"nats --creds":        {want: `Received on "ops.`, runFor: 12 * time.Second},
	"curl -H @var/enjin/admin.header http://127.0.0.1:7070/v1/nodes\n":                         {want: `"id":"ring1-local"`},
	"curl -H @var/enjin/admin.header 'http":                                                    {want: `"state":"up"`},
	"curl -H @var/enjin/admin.header http://127.0.0.1:7070/v1/nodes/ring1-local/observations":  {want: `"observations"`},
	"curl -H @var/enjin/admin.header -H 'Content-Type: application/json' -d '{\"ring\"":        {want: `"label":"rack-1"`},
	"curl -H @var/enjin/admin.header -H 'Content-Type: application/json' -d '{\"id\"":          {want: `"id":"edge-1"`},
	"curl -H @var/enjin/admin.header -H 'Content-Type: application/json' -d '{\"ttl_seconds\"": {},
	"./enjin nodes\n":                                                    {want: "ring1-local"},
	"./enjin members":                                                    {want: "yes (epoch "},
	"./enjin compartments create":                                        {want: "rack-1"},
	"./enjin creds ops":                                                  {want: "wrote me.creds"},
	"./enjin verify":                                                     {want: " 0 failed"},
	"./enjin --version":                                                  {want: "enjin "},
	"source <(./enjin completion bash)":                                  {},
	"./enjin tenants create acme":                                        {want: "created tenant acme"},
	"mkdir -p /tmp/hello":                                                {},
	"echo 'web: ./sampleapp'":                                            {},
	"echo '{\"health\": \"/healthz\"}'":                                  {},
	"./enjin apps deploy /tmp/hello":                                     {want: "deployed acme/hello release 1"},
	"curl -H 'Host: hello.acme":                                          {want: "hello from hello release 1"},
	"dig +short":                                                         {want: "127.0.0.1"},
	"./enjin apps scale acme/hello web=3":                                {want: "healthy"},
	"./enjin apps ps acme/hello":                                         {want: "web.2"},
	"./enjin apps env acme/hello GREETING":                               {want: "release 2"},
	"./enjin apps env acme/hello\n":                                      {want: "GREETING=********"},
	"./enjin logs acme/hello -f":                                         {want: "request GET /", runFor: 3 * time.Second},
	"./enjin run acme/hello -- 'echo release":                            {want: "release 2"},
	"./enjin apps releases acme/hello;":                                  {want: "destroyed acme/hello"},
	"deploy/guest-image.sh var/guest":                                    {want: "guest-image: done"},
	"./enjin images upload --kernel":                                     {want: "stored image guest"},
	"./enjin machine-types ls":                                           {want: "small"},
	"./enjin vms create acme/vm1":                                        {want: "running"},
	"./enjin vms show acme/vm1 -o json":                                  {want: `"observed_state": "running"`},
	"./enjin volumes create acme/data":                                   {want: "acme/data"},
	"./enjin volumes attach acme/data":                                   {want: "vm1"},
	"./enjin vms nic add acme/vm1":                                       {want: "running"},
	"./enjin vms console acme/vm1":                                       {want: "enjin-guest: up", retryFor: 2 * time.Minute},
	"./enjin vms stop acme/vm1;":                                         {want: "running"},
	"./enjin volumes detach acme/data;":                                  {want: "destroyed acme/vm1"},
	"./enjin networks create acme/lan":                                   {want: "acme/lan"},
	"./enjin rulesets create acme/web":                                   {want: "in tcp 80 from net:lan accept"},
	"./enjin vms create acme/db":                                         {want: "running"},
	"./enjin vms create acme/app":                                        {want: "running"},
	"./enjin vms console acme/app":                                       {want: "user-data: reached db", retryFor: 2 * time.Minute},
	"./enjin rulesets update acme/web":                                   {want: "in icmp accept"},
	"./enjin rulesets show acme/web":                                     {want: "in icmp accept"},
	"./enjin vms destroy acme/app;":                                      {want: "deleted acme/lan"},
	"./enjin networks create acme/wan":                                   {want: `"nat": true`},
	"./enjin rulesets create acme/egress":                                {want: "out tcp 443 accept"},
	"deploy/bootstrap.sh --join":                                         {runFor: -1}, // runs until the end
	"./enjin nodes decommission edge-1":                                  {want: "decommissioned edge-1", waitNode: "edge-1"},
	"./enjin init --state-dir var/r0-a":                                  {skip: clusterSkip},
	"./enjin ring0 --database-url postgres:///enjin --state-dir var/r0-": {skip: clusterSkip},
	"curl -H @var/r0-a/admin.header":                                     {skip: clusterSkip},
}

// clusterSkip is why TestReadme does not run the README's ring 0 cluster lines beside `enjin
// up`: they need a database of their own and ports `enjin up` holds. TestReadmeCluster runs
// them apart.
const clusterSkip = "run by TestReadmeCluster, on a database and ports of their own"

// TestReadme runs the README as a newcomer does: in a copy of the repository, the main command
// exactly as written (deploy/bootstrap.sh, no flags, the default ports and state dir), then
// every command line of every shell block, in order, each checked against what the README
// says it does. The JSON blocks that are files (the limits example) must load. At the end,
// Ctrl-C stops everything it started.
func TestReadme(t *testing.T) {
	root := moduleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines, jsonBlocks := readmeBlocks(string(readme))
	for _, b := range jsonBlocks {
		if strings.HasPrefix(b, `{"default"`) {
			f := filepath.Join(t.TempDir(), "limits.json")
			os.WriteFile(f, []byte(b), 0o600)
			if _, err := apphost.LoadPolicy(f); err != nil {
				t.Errorf("the README's limits example: %v", err)
			}
		}
	}
	harness.LibvirtdShared(t) // the README makes a VM
	dir := copyRepo(t, root)
	t.Cleanup(func() {
		harness.StopDetached(t, filepath.Join(dir, "var", "enjin"))
		harness.RemoveNode(t, "enjin0")
		os.RemoveAll("/tmp/hello")
	})
	boot := exec.Command("deploy/bootstrap.sh")
	boot.Dir = dir
	p := harness.Adopt(t, boot)
	t.Cleanup(func() { // the VMs the README made, if the test stopped before the README destroys them
		for _, vm := range []string{"acme/vm1", "acme/db", "acme/app"} {
			exec.Command(filepath.Join(dir, "enjin"), "vms", "destroy", vm, "--state-dir", filepath.Join(dir, "var", "enjin")).Run()
		}
	})
	harness.Eventually(t, 3*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(dir, "var", "enjin", "endpoints.json"))
		return err == nil
	}, "deploy/bootstrap.sh: endpoints.json (output: %s)", p.Out)
	var background []*exec.Cmd
	ran := 0
	for _, line := range lines {
		step, ok := stepFor(line)
		switch {
		case !ok:
			t.Errorf("README line %q: no rule in readmeSteps says how to run it", line)
			continue
		case step.skip != "" || strings.TrimSpace(stripComment(line)) == "deploy/bootstrap.sh":
			continue
		}
		if step.waitNode != "" {
			harness.Eventually(t, time.Minute, func() bool {
				out, _ := exec.Command(filepath.Join(dir, "enjin"), "nodes", "--state", "up", "--state-dir", filepath.Join(dir, "var", "enjin")).Output()
				return bytes.Contains(out, []byte(step.waitNode))
			}, "%s up", step.waitNode)
		}
		out, bg := runReadmeLine(t, dir, line, step)
		if step.retryFor > 0 { // a person runs it again a moment later
			harness.Poll(step.retryFor, func() bool {
				out, bg = runReadmeLine(t, dir, line, step)
				return strings.Contains(out, step.want)
			})
		}
		if bg != nil {
			background = append(background, bg)
		}
		if step.want != "" && !strings.Contains(out, step.want) {
			t.Fatalf("README line %q: output lacks %q:\n%s", line, step.want, out)
		}
		ran++
	}
	for _, c := range background {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}
	// Ctrl-C stops everything bootstrap started: no process of the copy is left.
	p.Cmd.Process.Signal(syscall.SIGINT)
	if code := p.Wait(t, 2*time.Minute); code != 0 && code != 130 {
		t.Errorf("enjin up exited %d after Ctrl-C", code)
	}
	harness.Eventually(t, 30*time.Second, func() bool { return countProcs(dir+"/") == 0 },
		"no process of the copy left after Ctrl-C")
	t.Logf("README: ran %d command lines of %d, as written, from a copy of the repository", ran, len(lines))
}

// readmeBlocks returns the command lines of the README's sh blocks (continuations joined,
// comments and blank lines dropped) and the bodies of its json blocks.
func readmeBlocks(readme string) (lines, jsonBlocks []string) {
	sc := bufio.NewScanner(strings.NewReader(readme))
	var block string
	var body strings.Builder
	cont := ""
	for sc.Scan() {
		l := sc.Text()
		switch {
		case block == "" && strings.HasPrefix(l, "```"):
			block = strings.TrimPrefix(l, "```")
			body.Reset()
		case block != "" && l == "```":
			if block == "json" {
				jsonBlocks = append(jsonBlocks, body.String())
			}
			block = ""
		case block == "sh":
			l = strings.TrimSpace(l)
			if strings.HasSuffix(l, "\\") {
				cont += strings.TrimSuffix(l, "\\")
				continue
			}
			l = strings.Join(strings.Fields(cont+l), " ")
			cont = ""
			if l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		case block != "":
			body.WriteString(l + "\n")
		}
	}
	return lines, jsonBlocks
}

// stepFor finds the rule for a line: the longest key the line starts with (a key ending in a
// newline matches the whole line, its comment aside).
func stepFor(line string) (readmeStep, bool) {
	cmd := strings.TrimSpace(stripComment(line))
	best, found := "", false
	var step readmeStep
	for k, s := range readmeSteps {
		match := strings.HasPrefix(cmd, k)
		if whole, ok := strings.CutSuffix(k, "\n"); ok {
			match = cmd == whole
		}
		if match && len(k) > len(best) {
			best, step, found = k, s, true
		}
	}
	return step, found
}

// stripComment drops a trailing " # …" comment: a # that starts a word outside quotes.
func stripComment(line string) string {
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && i > 0 && line[i-1] == ' ':
			return line[:i]
		}
	}
	return line
}

// runReadmeLine runs one line with bash in dir and returns what it printed; a line that runs
// until stopped is stopped after step.runFor (or left running, returned, if runFor < 0).
func runReadmeLine(t *testing.T, dir, line string, step readmeStep) (string, *exec.Cmd) {
	t.Helper()
	ctx := t.Context()
	if step.runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, step.runFor)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", strings.TrimSuffix(strings.TrimSpace(stripComment(line)), "&"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(os.Getenv("HOME"), "go", "bin")+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if step.runFor < 0 {
		if err := cmd.Start(); err != nil {
			t.Fatalf("README line %q: %v", line, err)
		}
		return "", cmd
	}
	err := cmd.Run()
	if step.runFor > 0 {
		return fmt.Sprintf("%s(stopped after %v: %v)", out.String(), step.runFor, err), nil // stopped on purpose
	}
	if err != nil {
		t.Fatalf("README line %q: %v\n%s", line, err, out.String())
	}
	return out.String(), nil
}

// copyRepo copies the repository's files (tracked, and new ones not ignored) to a directory
// of the test's, as a clone would have them.
func copyRepo(t *testing.T, root string) string {
	t.Helper()
	dir := tempDir(t, "enjin-readme-")
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src, dst := filepath.Join(root, f), filepath.Join(dir, f)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
