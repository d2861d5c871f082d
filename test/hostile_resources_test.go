package test

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// resources: B exhausts what it has — processes, memory, its HOME, /tmp and /dev/shm, and
// instances — and meets its own limits, while A keeps answering fast.
func (w *world) resources(t *testing.T) {
	c := w.c
	// A fork bomb, again and again for 4 s, while A's latency through the router is measured.
	stop, done := make(chan struct{}), make(chan []time.Duration)
	go func() { // ends when stop is closed
		var lat []time.Duration
		for {
			select {
			case <-stop:
				done <- lat
				return
			default:
			}
			t0 := time.Now()
			code, body := c.get("acme", "probe", "/whoami")
			lat = append(lat, time.Since(t0))
			if code != 200 || !strings.HasPrefix(body, "acme/probe ") {
				lat[len(lat)-1] = time.Hour // a failure counts as the slowest answer
			}
		}
	}()
	out, _, err := c.sh("evil", "probe", `end=$(($(date +%s)+4)); while [ $(date +%s) -lt $end ]; do /app/probe run fork-bomb=5000; done`)
	close(stop)
	lat := <-done
	if err != nil {
		t.Fatalf("fork bomb: %v", err)
	}
	bombs := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r result
		var got, want int
		json.Unmarshal([]byte(line), &r)
		n, _ := fmt.Sscanf(r.Detail, "started %d of %d", &got, &want)
		held := r.OK && n == 2 && got < 256 // the default pids limit, shared with the shell and the probe
		c.tally.add("resources", held)
		bombs++
		if !held {
			t.Errorf("WALL BROKEN (resources): fork bomb in B: %s", line)
		}
	}
	if bombs == 0 || len(lat) < 20 {
		t.Fatalf("fork bomb: %d rounds in B, %d requests to A meanwhile: too few to tell", bombs, len(lat))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[(len(lat)*99+99)/100-1] // the ceil(0.99 n)-th
	t.Logf("fork bomb: %d rounds in B; A answered %d requests meanwhile, p50 %v, p99 %v", bombs, len(lat),
		lat[len(lat)/2].Round(time.Microsecond), p99.Round(time.Microsecond))
	if p99 > 500*time.Millisecond {
		t.Errorf("WALL BROKEN (resources): A's p99 through the router during B's fork bomb is %v, want under 500ms", p99)
	}
	c.checkUnharmed(t)

	w.memory(t)
	w.disks(t)
	w.instances(t)
}

// memory: a child of B's shell touching 1 GiB is killed; an app of B that does so itself is
// OOM-killed and its deploy fails saying so; ring 1's memory stays where it was.
func (w *world) memory(t *testing.T) {
	c := w.c
	before := vmRSS(c.ring1)
	c.attack(t, "resources", "evil", "probe", []string{"memory=1024", "memory=4096"})
	dir := c.probeApp(t, filepath.Join("apps", "evil", "hog"), "web: ./probe hog 1024\n", `{"memory_mb":32}`)
	out, err := c.cli("apps", "deploy", "evil/hog", dir, "-q")
	held := err != nil && strings.Contains(out, "out of memory")
	c.tally.add("resources", held)
	if !held {
		t.Errorf("WALL BROKEN (resources): deploy of an app touching 1 GiB in 32 MiB: %v, want a failure saying out of memory:\n%s", err, out)
	}
	after := vmRSS(c.ring1)
	t.Logf("memory: ring 1 RSS %d MiB before, %d MiB after; the hog's deploy said: %s", before>>20, after>>20, lastLine(out))
	if after > before+64<<20 {
		t.Errorf("WALL BROKEN (resources): ring 1's RSS grew from %d to %d MiB while B hogged memory", before>>20, after>>20)
	}
	c.checkUnharmed(t)
}

// vmRSS is a process's resident memory in bytes.
func vmRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// disks: B fills its HOME (32 MiB, its disk_mb), /tmp and /dev/shm (16 MiB, its tmp_mb) and
// meets ENOSPC at its own size, not the host disk's.
func (w *world) disks(t *testing.T) {
	c := w.c
	var st syscall.Statfs_t
	if err := syscall.Statfs(c.state, &st); err != nil {
		t.Fatal(err)
	}
	hostFree := int64(st.Bavail) * st.Bsize >> 20
	for _, d := range []struct {
		probe string
		size  int
	}{{"home-size", 32}, {"tmp-size", 16}, {"shm-size", 16}} {
		rs, err := c.probes("evil", "probe", []string{fmt.Sprintf("%s=%d", d.probe, 4*d.size)})
		if err != nil {
			t.Fatal(err)
		}
		var mib int
		fmt.Sscanf(rs[0].Detail, "after %d MiB", &mib)
		held := rs[0].OK && mib <= d.size && mib >= d.size/2 && hostFree > int64(8*d.size)
		c.tally.add("resources", held)
		if !held {
			t.Errorf("WALL BROKEN (resources): %s in B, size %d MiB, host disk %d MiB free: %+v", d.probe, d.size, hostFree, rs[0])
		}
		t.Logf("%s: %s (size %d MiB; the host disk has %d MiB free)", d.probe, rs[0].Detail, d.size, hostFree)
	}
	c.checkUnharmed(t)
}

// instances: B asks for more instances than a type or a tenant may have; each is refused
// with a 4xx naming the field or the quota, and nothing starts.
func (w *world) instances(t *testing.T) {
	c := w.c
	groups := c.instanceGroups()
	running := 0
	var apps struct {
		Apps []struct {
			Instances map[string]int `json:"instances"`
		} `json:"apps"`
	}
	_, body := c.call("Bearer "+w.tokB, "GET", "/v1/tenants/evil/apps", nil)
	json.Unmarshal([]byte(body), &apps)
	for _, a := range apps.Apps {
		for _, n := range a.Instances {
			running += n
		}
	}
	check := func(what string, code int, body, field string) {
		var e struct{ Field, Code string }
		json.Unmarshal([]byte(body), &e)
		held := code >= 400 && code < 500 && (e.Field == field || e.Code == field)
		c.tally.add("resources", held)
		if !held {
			t.Errorf("WALL BROKEN (resources): %s: %d %s, want 4xx naming %s", what, code, strings.TrimSpace(body), field)
		}
	}
	for _, n := range []string{"21", "1000", "-1", "2147483648"} {
		code, body := c.call("Bearer "+w.tokB, "PUT", "/v1/tenants/evil/apps/probe/scale/web", strings.NewReader(`{"instances":`+n+`}`))
		check("scale web="+n, code, body, "scale.web")
	}
	out, err := c.as(w.tokB, "apps", "scale", "evil/probe", "web=21")
	held := err != nil && strings.Contains(out, "scale.web") && strings.Count(strings.TrimSpace(out), "\n") == 0
	c.tally.add("resources", held)
	if !held {
		t.Errorf("WALL BROKEN (resources): enjin apps scale evil/probe web=21 as B: %v, want one line naming scale.web:\n%s", err, out)
	}
	// One app asking for 60 (the manifest is refused), then one for what would pass the
	// tenant's 50 by one (the quota refuses it).
	need := 51 - running
	if need < 1 || need > 50 {
		t.Fatalf("B runs %d instances: want 1 to 50 to try the quota with one app", running)
	}
	web, worker := min(need, 20), min(need-min(need, 20), 20)
	for _, m := range []struct{ name, manifest, field string }{
		{"many", `{"instances":{"web":20,"worker":20,"clock":20}}`, "instances"},
		{"quota", fmt.Sprintf(`{"instances":{"web":%d,"worker":%d,"clock":%d}}`, web, worker, need-web-worker), "quota"},
	} {
		code, body := c.call("Bearer "+w.tokB, "POST", "/v1/tenants/evil/apps/"+m.name+"/releases",
			bundleOf(t, map[string]string{"Procfile": "web: ./probe serve\nworker: ./probe trap\nclock: ./probe trap\n", "enjin.json": m.manifest}))
		check("deploy "+m.name+" "+m.manifest, code, body, m.field)
		code, body = c.call("Bearer "+w.tokB, "GET", "/v1/tenants/evil/apps/"+m.name+"/instances", nil)
		if code != 404 && !(code == 200 && strings.Contains(body, `"instances":[]`)) {
			t.Errorf("WALL BROKEN (resources): refused app %s: instances answer %d %s, want none", m.name, code, body)
		}
	}
	if now := c.instanceGroups(); now != groups {
		t.Errorf("WALL BROKEN (resources): instance cgroups: %d before B's refused requests, %d after", groups, now)
	}
	t.Logf("instances: B runs %d; scale and deploys past 20 a type and 50 a tenant refused, %d instance cgroups before and after", running, groups)
	c.checkUnharmed(t)
}

// oldUID is the uid the old scheme gave an app: derived from its name.
func oldUID(tenant, app string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(tenant + "/" + app))
	return 200000 + h.Sum32()%1_000_000
}

// uids: B names an app so that the old scheme would have given it A's uid; it gets a uid of
// its own, and reads nothing of A's. Two apps of one tenant have two uids.
func (w *world) uids(t *testing.T) {
	c := w.c
	want := oldUID("acme", "probe")
	name := ""
	for i := 0; i < 100_000_000 && name == ""; i++ {
		if n := "u" + strconv.FormatInt(int64(i), 36); oldUID("evil", n) == want {
			name = n
		}
	}
	if name == "" {
		t.Fatal("no colliding name found")
	}
	w.deploy(t, "evil", name, `{"health":"/healthz"}`)
	id := func(tenant, app string) string { return strings.TrimSpace(c.mustSh(t, tenant, app, "id -u")) }
	a, b, b2 := id("acme", "probe"), id("evil", name), id("evil", "probe")
	t.Logf("uids: acme/probe and evil/%s had old uid %d; now %s and %s (evil/probe %s)", name, want, a, b, b2)
	for _, p := range [][2]string{{a, b}, {a, b2}, {b, b2}} {
		c.tally.add("uids", p[0] != p[1])
		if p[0] == p[1] {
			t.Errorf("WALL BROKEN (uids): two apps share uid %s", p[0])
		}
	}
	var attempts []string
	for _, p := range append(w.hostPaths(t), "/home/app/secret", "/tmp/acme-secret", "/dev/shm/acme-secret") {
		attempts = append(attempts, "absent="+p)
	}
	c.attack(t, "uids", "evil", name, append(attempts, w.ipcAttempts()...))
}

// names: tenant acme-shop's app api and tenant acme's app shop-api — the same name once
// tenant and app are joined with a dash, as names of devices and groups once were — both
// serve their own release, and neither loses its network while the other is deployed,
// redeployed or destroyed.
func (w *world) names(t *testing.T) {
	c := w.c
	x, y := [2]string{"acme-shop", "api"}, [2]string{"acme", "shop-api"}
	w.deploy(t, x[0], x[1], `{"health":"/healthz"}`)
	c.guard(x[0], x[1], "acme-shop/api release 1 ")
	c.probeApp(t, filepath.Join("apps", y[0], y[1]), "web: ./probe serve\n", `{"health":"/healthz"}`)
	c.checkUnharmed(t)
	for _, op := range []struct {
		desc          string
		target, watch [2]string
		run           func() (string, error)
		whoami        string // what the target answers after it; "" when it is gone
	}{
		{"deploy acme/shop-api", y, x, func() (string, error) { return w.redeploy(y) }, "acme/shop-api release 1 "},
		{"redeploy acme-shop/api", x, y, func() (string, error) { return w.redeploy(x) }, "acme-shop/api release 2 "},
		{"redeploy acme/shop-api", y, x, func() (string, error) { return w.redeploy(y) }, "acme/shop-api release 2 "},
		{"destroy acme-shop/api", x, y, func() (string, error) { return c.cli("apps", "destroy", "acme-shop/api") }, ""},
	} {
		ref := op.watch[0] + "/" + op.watch[1]
		was := c.ps(t, ref)[0]
		fails, polls := watch(c, op.watch)
		out, err := op.run()
		n, bad := polls(), fails()
		if err != nil {
			t.Fatalf("%s: %v\n%s", op.desc, err, out)
		}
		// The watched app answered throughout, from the same instance at the same address.
		now := c.ps(t, ref)[0]
		held := bad == 0 && now.ID == was.ID && now.Address == was.Address && now.Restarts == was.Restarts
		c.tally.add("names", held)
		if !held {
			t.Errorf("WALL BROKEN (names): %s failed %d of %d requests while %s; instance %+v, was %+v", ref, bad, n, op.desc, now, was)
		} else {
			t.Logf("%s: %s answered all %d requests meanwhile, from the same instance", op.desc, ref, n)
		}
		c.guard(op.target[0], op.target[1], op.whoami)
		c.checkUnharmed(t)
	}
	if code, body := c.get(x[0], x[1], "/whoami"); code != 404 {
		t.Errorf("destroyed acme-shop/api answers %d %q", code, body)
	}
}

// redeploy deploys app a's probe bundle again.
func (w *world) redeploy(a [2]string) (string, error) {
	return w.c.cli("apps", "deploy", a[0]+"/"+a[1], filepath.Join(w.c.dir, "apps", a[0], a[1]), "-q")
}

// watch asks app a for /whoami until the returned polls is called, which says how many
// requests were made; fails says how many did not answer 200 as a.
func watch(c *hostileCloud, a [2]string) (fails func() int, polls func() int) {
	stop := make(chan struct{})
	var n, bad int
	var wg sync.WaitGroup
	wg.Go(func() { // ends when stop is closed
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			n++
			if code, body := c.get(a[0], a[1], "/whoami"); code != 200 || !strings.HasPrefix(body, a[0]+"/"+a[1]+" ") {
				bad++
			}
		}
	})
	return func() int { return bad }, func() int { close(stop); wg.Wait(); return n }
}

// unpackRaces: while A deploys release after release, B keeps looking for A's staging and
// release directories at the paths the host has them, as they appear.
func (w *world) unpackRaces(t *testing.T) {
	c := w.c
	c.guard("acme", "probe", "acme/probe release ")
	seen := map[string]bool{}
	fixed := []string{c.appsDir("staging"), c.appsDir("packages")}
	for n := 1; n <= 8; n++ {
		fixed = append(fixed, c.appsDir("apps", "acme", "probe", "releases", strconv.Itoa(n)))
	}
	deploying := make(chan string, 1)
	go func() { // ends after its deploys, whether or not anyone still listens
		last := ""
		for range 4 {
			out, err := c.cli("apps", "deploy", "acme/probe", filepath.Join(c.dir, "apps", "acme", "probe"), "-q")
			if err != nil {
				last = "error: " + err.Error() + "\n" + out
				break
			}
			last = out
		}
		deploying <- last
	}()
	staged := 0
	for last := ""; ; {
		select {
		case last = <-deploying:
		default:
		}
		// The staging directories there are now first, then the release directories.
		var a []string
		es, _ := os.ReadDir(c.appsDir("staging"))
		for _, e := range es {
			p := c.appsDir("staging", e.Name())
			if !seen[p] {
				staged++
			}
			seen[p] = true
			for _, q := range []string{p, filepath.Join(p, "probe"), filepath.Join(p, "Procfile")} {
				a = append(a, "absent="+q, "unreadable="+q)
			}
		}
		for _, p := range fixed {
			a = append(a, "absent="+p, "unreadable="+p)
		}
		c.attack(t, "unpack", "evil", "probe", a[:min(len(a), 50)])
		if last != "" {
			if strings.HasPrefix(last, "error: ") {
				t.Fatalf("A's deploys: %s", last)
			}
			if n, _ := fmt.Sscanf(last, "deployed acme/probe release %d", &w.release); n != 1 {
				t.Fatalf("A's last deploy said %q", last)
			}
			break
		}
	}
	t.Logf("unpack: A deployed up to release %d while B looked; %d staging directories seen on the host", w.release, staged)
	c.guard("acme", "probe", fmt.Sprintf("acme/probe release %d ", w.release))
	c.checkUnharmed(t)
}
