package apphost

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"enjin"
)

const web = "web: ./server\n"

// manyTypes is a Procfile of n process types t0…, each running ./t.
func manyTypes(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "t%d: ./t\n", i)
	}
	return b.String()
}

// manyEnv is an env object of n variables V0… with values of size bytes.
func manyEnv(n, size int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"V%d":%q`, i, strings.Repeat("x", size)))
	}
	return `{"env":{` + strings.Join(parts, ",") + `}}`
}

// badManifests are hostile or malformed bundles and the field each must be refused for.
var badManifests = []struct {
	name, procfile, json, field string
}{
	// health
	{"health broken escape", web, `{"health":"/%zz"}`, "health"},
	{"health short escape", web, `{"health":"/a%4"}`, "health"},
	{"health two slashes", web, `{"health":"//evil"}`, "health"},
	{"health absolute URL", web, `{"health":"http://x/"}`, "health"},
	{"health space", web, `{"health":"/a b"}`, "health"},
	{"health NUL", web, `{"health":"/\u0000"}`, "health"},
	{"health fragment", web, `{"health":"/#frag"}`, "health"},
	{"health 2 KiB", web, `{"health":"/` + strings.Repeat("a", 2047) + `"}`, "health"},
	{"health relative", web, `{"health":"healthz"}`, "health"},
	{"health not ASCII", web, `{"health":"/é"}`, "health"},
	{"health angle bracket", web, `{"health":"/a<b"}`, "health"},
	{"health backslash", web, `{"health":"/a\\b"}`, "health"},
	{"health newline", web, `{"health":"/a\nHost: x"}`, "health"},
	{"health number", web, `{"health":5}`, "health"},
	{"health null", web, `{"health":null}`, "health"},
	// limits
	{"pids 4000000", web, `{"pids":4000000}`, "pids"},
	{"memory 1e9", web, `{"memory_mb":1e9}`, "memory_mb"},
	{"memory float", web, `{"memory_mb":1.5}`, "memory_mb"},
	{"memory 1.0", web, `{"memory_mb":1.0}`, "memory_mb"},
	{"memory below minimum", web, `{"memory_mb":8}`, "memory_mb"},
	{"memory string", web, `{"memory_mb":"64"}`, "memory_mb"},
	{"cpu negative", web, `{"cpu_millis":-1}`, "cpu_millis"},
	{"cpu over 2 cores", web, `{"cpu_millis":2001}`, "cpu_millis"},
	{"pids beyond int64", web, `{"pids":99999999999999999999999}`, "pids"},
	{"pids below minimum", web, `{"pids":4}`, "pids"},
	{"disk over maximum", web, `{"disk_mb":999999}`, "disk_mb"},
	{"tmp exponent", web, `{"tmp_mb":1E2}`, "tmp_mb"},
	{"tmp array", web, `{"tmp_mb":[64]}`, "tmp_mb"},
	{"limit twice", web, `{"pids":16,"pids":4096}`, "pids"},
	// instances
	{"instances unknown type", web, `{"instances":{"nope":1}}`, "instances.nope"},
	{"instances 1000", web, `{"instances":{"web":1000}}`, "instances.web"},
	{"instances negative", web, `{"instances":{"web":-1}}`, "instances.web"},
	{"instances float", web, `{"instances":{"web":1.5}}`, "instances.web"},
	{"instances array", web, `{"instances":[1]}`, "instances"},
	{"instances type twice", web, `{"instances":{"web":1,"web":2}}`, "instances.web"},
	{"instances over the tenant's", "a: x\nb: x\nc: x\n", `{"instances":{"a":20,"b":20,"c":20}}`, "instances"},
	// env
	{"env name with dash", web, `{"env":{"A-B":"1"}}`, "env.A-B"},
	{"env name with digit first", web, `{"env":{"1A":"1"}}`, "env.1A"},
	{"env name empty", web, `{"env":{"":"1"}}`, `env.""`},
	{"env name 129 bytes", web, `{"env":{"` + strings.Repeat("A", 129) + `":"1"}}`, "env." + quote(strings.Repeat("A", 129))},
	{"env name with newline", web, `{"env":{"A\nB":"1"}}`, `env."A\nB"`},
	{"env PORT", web, `{"env":{"PORT":"80"}}`, "env.PORT"},
	{"env HOME", web, `{"env":{"HOME":"/"}}`, "env.HOME"},
	{"env ENJIN_X", web, `{"env":{"ENJIN_X":"1"}}`, "env.ENJIN_X"},
	{"env 40 KiB value", web, `{"env":{"BIG":"` + strings.Repeat("x", 40<<10) + `"}}`, "env.BIG"},
	{"env NUL in value", web, `{"env":{"X":"a\u0000b"}}`, "env.X"},
	{"env 129 entries", web, manyEnv(129, 1), "env"},
	{"env value object", web, `{"env":{"X":{}}}`, "env.X"},
	{"env number value", web, `{"env":{"X":1}}`, "env.X"},
	{"env name twice", web, `{"env":{"X":"1","X":"2"}}`, "env.X"},
	{"env array", web, `{"env":["X=1"]}`, "env"},
	// spread
	{"spread a string", web, `{"spread":"no"}`, "spread"},
	{"spread a number", web, `{"spread":0}`, "spread"},
	{"spread null", web, `{"spread":null}`, "spread"},
	{"cron a list", web, `{"cron":[]}`, "cron"},
	{"cron job a string", web, `{"cron":{"t":"* * * * *"}}`, "cron.t"},
	{"cron unknown field", web, `{"cron":{"t":{"schedule":"@hourly","command":"x","user":"root"}}}`, "cron.t.user"},
	{"cron bad schedule", web, `{"cron":{"t":{"schedule":"61 * * * *","command":"x"}}}`, "cron.t.schedule"},
	{"cron six fields", web, `{"cron":{"t":{"schedule":"* * * * * *","command":"x"}}}`, "cron.t.schedule"},
	{"cron empty schedule", web, `{"cron":{"t":{"command":"x"}}}`, "cron.t.schedule"},
	{"cron time zone", web, `{"cron":{"t":{"schedule":"TZ=Asia/Tokyo 0 3 * * *","command":"x"}}}`, "cron.t.schedule"},
	{"cron no command", web, `{"cron":{"t":{"schedule":"@hourly"}}}`, "cron.t.command"},
	{"cron control in command", web, `{"cron":{"t":{"schedule":"@hourly","command":"a\u001bb"}}}`, "cron.t.command"},
	{"cron bad name", web, `{"cron":{"Bad Name":{"schedule":"@hourly","command":"x"}}}`, `cron."Bad Name"`},
	{"cron job twice", web, `{"cron":{"t":{"schedule":"@hourly","command":"x"},"t":{"schedule":"@hourly","command":"y"}}}`, "cron.t"},
	{"cron too many", web, `{"cron":{` + manyCron(17) + `}}`, "cron"},
	// networks
	{"networks object", web, `{"networks":{"db":[]}}`, "networks"},
	{"network number", web, `{"networks":[1]}`, "networks.0"},
	{"network name not a slug", web, `{"networks":["DB"]}`, "networks.0"},
	{"network name empty", web, `{"networks":[""]}`, "networks.0"},
	{"network the node's own", web, `{"networks":["default"]}`, "networks.0"},
	{"network twice", web, `{"networks":["db",{"name":"db"}]}`, "networks.1"},
	{"network 9 of them", web, `{"networks":["a","b","c","d","e","f","g","h","i"]}`, "networks"},
	{"network unknown field", web, `{"networks":[{"name":"db","vni":7}]}`, "networks.0.vni"},
	{"network name twice", web, `{"networks":[{"name":"db","name":"x"}]}`, "networks.0.name"},
	{"network rulesets string", web, `{"networks":[{"name":"db","rulesets":"web"}]}`, "networks.0.rulesets"},
	{"network ruleset not a slug", web, `{"networks":[{"name":"db","rulesets":["a b"]}]}`, "networks.0.rulesets.0"},
	{"network 9 rulesets", web, `{"networks":[{"name":"db","rulesets":["a","b","c","d","e","f","g","h","i"]}]}`, "networks.0.rulesets"},
	{"network unfinished", web, `{"networks":["db"`, "enjin.json"},
	// the document
	{"trailing garbage", web, `{} x`, "enjin.json"},
	{"two objects", web, `{}{}`, "enjin.json"},
	{"unknown field", web, `{"memory":64}`, "memory"},
	{"unknown field, empty", web, `{"":64}`, `""`},
	{"procfile key", web, `{"procfile":{"web":"./evil"}}`, "procfile"},
	{"array", web, `[]`, "enjin.json"},
	{"null", web, `null`, "enjin.json"},
	{"string", web, `"x"`, "enjin.json"},
	{"number", web, `42`, "enjin.json"},
	{"unfinished", web, `{"health":`, "enjin.json"},
	{"byte order mark", web, "\ufeff{}", "enjin.json"},
	{"invalid UTF-8", web, "{\"health\":\"/\xff\"}", "enjin.json"},
	{"70 KiB", web, `{"health":"/"` + strings.Repeat(" ", 70<<10) + `}`, "enjin.json"},
	// Procfile
	{"Procfile invalid UTF-8", "web: ./a\xff\n", "", "Procfile"},
	{"Procfile NUL", "web: ./a\x00b\n", "", "Procfile"},
	{"command escape", "web: ./a\x1b[2J\n", "", "procfile.web"},
	{"command CR inside", "web: ./a\rb\n", "", "procfile.web"},
	{"command C1 control", "web: ./a\u009bb\n", "", "procfile.web"},
	{"command 5 KiB", "web: " + strings.Repeat("x", 5<<10) + "\n", "", "procfile.web"},
	{"command empty", "web:\n", "", "procfile.web"},
	{"empty Procfile", "", "", "Procfile"},
	{"comments only", "# web: ./a\n\n   # x\n", "", "Procfile"},
	{"duplicate type", "web: ./a\nweb: ./b\n", "", "procfile.web"},
	{"type uppercase", "Web: ./a\n", "", "Procfile"},
	{"type digit first", "1web: ./a\n", "", "Procfile"},
	{"type with space", "w eb: ./a\n", "", "Procfile"},
	{"type 32 bytes", strings.Repeat("a", 32) + ": ./a\n", "", "Procfile"},
	{"no colon", "web ./a\n", "", "Procfile"},
	{"17 types", manyTypes(17), "", "Procfile"},
	{"70 KiB Procfile", web + strings.Repeat("# padding\n", 7<<10), "", "Procfile"},
}

func TestParseManifestRefuses(t *testing.T) {
	if len(badManifests) < 40 {
		t.Fatalf("%d variants; want at least 40", len(badManifests))
	}
	for _, tt := range badManifests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.procfile), []byte(tt.json), DefaultPolicy())
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %+v, %v; want a *FieldError for %s", m, err, tt.field)
			}
			if fe.Field != tt.field {
				t.Errorf("got field %q (%v); want %q", fe.Field, err, tt.field)
			}
			if len(err.Error()) > 400 {
				t.Errorf("message of %d bytes: %.100s…", len(err.Error()), err)
			}
		})
	}
}

func TestParseManifestAccepts(t *testing.T) {
	def := DefaultPolicy().Default
	for _, tt := range []struct {
		name, procfile, json string
		want                 Manifest
	}{
		{"defaults", web, `{}`, Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1},
			MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/"}},
		{"empty enjin.json is none", web, "", Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1},
			MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/"}},
		{"zeros are defaults", web, `{"memory_mb":0,"cpu_millis":0,"pids":0,"disk_mb":0,"tmp_mb":0,"health":""}`,
			Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1},
				MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/"}},
		{"worker only", "worker: ./w --queue=a\n", `{}`, Manifest{Procfile: map[string]string{"worker": "./w --queue=a"},
			Instances: map[string]int{"worker": 0}, MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/"}},
		{"everything at the maxima", "# app\r\nweb: ./server\t-p $PORT\r\n\r\nclock_1: ./clock\r\n",
			`{"instances":{"web":20,"clock_1":2},"memory_mb":4096,"cpu_millis":2000,"pids":4096,"disk_mb":10240,"tmp_mb":1024,
			"health":"/healthz?x=1&y=%2F","env":{"PATH":"/app/bin","A_1":"ünïcode\nlines"}}`,
			Manifest{Procfile: map[string]string{"web": "./server\t-p $PORT", "clock_1": "./clock"}, Instances: map[string]int{"web": 20, "clock_1": 2},
				MemoryMB: 4096, CPUMillis: 2000, Pids: 4096, DiskMB: 10240, TmpMB: 1024, Health: "/healthz?x=1&y=%2F",
				Env: map[string]string{"PATH": "/app/bin", "A_1": "ünïcode\nlines"}}},
		{"networks", web, `{"networks":["db",{"name":"lan","rulesets":["web","ssh"]},{"name":"x"}]}`,
			Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1},
				MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/",
				Networks: []enjin.AppNetwork{{Name: "db"}, {Name: "lan", Rulesets: []string{"web", "ssh"}}, {Name: "x"}}}},
		{"one host", web, `{"spread":false}`, Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1},
			MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/", OneHost: true}},
		{"cron", web, `{"cron":{"tick":{"schedule":"*/5 * * * *","command":"./tick"},"often":{"schedule":"@every 30s","command":"true"}}}`, Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1},
			MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/",
			Cron: map[string]CronJob{"tick": {Schedule: "*/5 * * * *", Command: "./tick"}, "often": {Schedule: "@every 30s", Command: "true"}}}},
		{"spread", web, `{"spread":true}`, Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1},
			MemoryMB: 256, CPUMillis: 1000, Pids: 256, DiskMB: 1024, TmpMB: 64, Health: "/"}},
		{"at the minima", web, `{"instances":{"web":0},"memory_mb":16,"cpu_millis":10,"pids":16,"disk_mb":16,"tmp_mb":1,"health":"/a!$&'()*+,;=:@~-._/%41"}`,
			Manifest{Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 0},
				MemoryMB: 16, CPUMillis: 10, Pids: 16, DiskMB: 16, TmpMB: 1, Health: "/a!$&'()*+,;=:@~-._/%41"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseManifest([]byte(tt.procfile), []byte(tt.json), DefaultPolicy())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if l := got.Limits(); l.MemoryMB == 0 || l.or(def) != l {
				t.Errorf("Limits() = %+v: a parsed manifest has every limit", l)
			}
		})
	}
	if _, err := ParseManifest([]byte(manyTypes(16)), nil, DefaultPolicy()); err != nil {
		t.Errorf("16 types: %v", err)
	}
	if _, err := ParseManifest([]byte(web), []byte(manyEnv(128, 400)), DefaultPolicy()); err != nil {
		t.Errorf("128 variables: %v", err)
	}
}

func TestFieldErrorMessages(t *testing.T) {
	for _, tt := range []struct{ procfile, json, want string }{
		{web, `{"health":"/%zz"}`, `enjin.json: health: "/%zz": broken percent-escape at byte 1`},
		{"# x\n\nweb: a\x1bb\n", "", `Procfile line 3: web: command has control character U+001B at byte 1`},
		{"Web: a\n", "", `Procfile line 1: type "Web": want a lowercase letter, then up to 30 of a-z, 0-9, _ and -`},
		{web, `{"pids":4000000}`, `enjin.json: pids: 4000000: want 16–4096 processes, or 0 for the default (256)`},
		{web, `{"memory_mb":1e9}`, `enjin.json: memory_mb: "1e9": want an integer`},
		{web, `{} {}`, `enjin.json: data after the JSON object`},
		{"", "", `Procfile: declares no process type`},
	} {
		_, err := ParseManifest([]byte(tt.procfile), []byte(tt.json), DefaultPolicy())
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q %q: got %v; want %s", tt.procfile, tt.json, err, tt.want)
		}
	}
	if err := ValidEnvName("PORT"); err == nil || err.Error() != "env.PORT: set by the platform" {
		t.Errorf("ValidEnvName(PORT) = %v", err)
	}
}

func TestValidEnvNameAndCheckEnv(t *testing.T) {
	for name, ok := range map[string]bool{"A": true, "_": true, "a_1": true, "PATH": true, "port": true, "ENJIN": true,
		"ENJIN_": false, "ENJIN_APP": false, "PORT": false, "HOME": false, "": false, "A=B": false, "A B": false, "é": false,
		strings.Repeat("A", 128): true, strings.Repeat("A", 129): false} {
		if err := ValidEnvName(name); (err == nil) != ok {
			t.Errorf("ValidEnvName(%q) = %v; want ok %v", name, err, ok)
		}
	}
	for _, tt := range []struct {
		env   map[string]string
		field string
	}{
		{nil, ""},
		{map[string]string{"A": "x", "PATH": "/bin"}, ""},
		{map[string]string{"A": "\xff"}, "env.A"},
		{map[string]string{"A": strings.Repeat("x", 32<<10), "B": strings.Repeat("x", 32<<10)}, ""},
		{func() map[string]string {
			e := map[string]string{}
			for i := range 9 {
				e[fmt.Sprint("V", i)] = strings.Repeat("x", 30<<10)
			}
			return e
		}(), "env"},
		{map[string]string{"A": "a\x00"}, "env.A"},
		{map[string]string{"B": "1", "A-": "1", "C-": "1"}, "env.A-"}, // the first by name, every time
	} {
		err := CheckEnv(tt.env)
		var fe *FieldError
		if tt.field == "" && err != nil || tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
			t.Errorf("CheckEnv(%q) = %v; want field %q", tt.env, err, tt.field)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	mod := func(f func(*Policy)) Policy { p := DefaultPolicy(); f(&p); return p }
	for _, tt := range []struct {
		name string
		p    Policy
		want []string // in the error, each
	}{
		{"default", DefaultPolicy(), nil},
		{"zero", Policy{}, []string{"Max memory_mb 0", "Max tmp_mb 0", "MaxInstances 0", "MaxTenantInstances 0", "MaxProcessTypes 0"}},
		{"default above max", mod(func(p *Policy) { p.Default.MemoryMB = 8192 }), []string{"Default memory_mb 8192: want 16–4096"}},
		{"default below minimum", mod(func(p *Policy) { p.Default.CPUMillis = 5; p.Default.TmpMB = 0 }), []string{"Default cpu_millis 5", "Default tmp_mb 0"}},
		{"max below minimum", mod(func(p *Policy) { p.Max.Pids = 8 }), []string{"Max pids 8"}},
		{"max beyond the kernel's", mod(func(p *Policy) { p.Max.Pids = 1 << 23 }), []string{"Max pids 8388608"}},
		{"negative count", mod(func(p *Policy) { p.MaxInstances = -1 }), []string{"MaxInstances -1"}},
		{"minima", mod(func(p *Policy) {
			p.Default = Limits{16, 10, 16, 16, 1}
			p.Max = p.Default
			p.MaxInstances, p.MaxTenantInstances, p.MaxProcessTypes = 1, 1, 1
		}), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if len(tt.want) == 0 && err != nil {
				t.Fatalf("got %v; want nil", err)
			}
			if len(tt.want) > 0 && err == nil {
				t.Fatalf("got nil; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %v; want it to say %q", err, w)
				}
			}
		})
	}
	if _, err := ParseManifest([]byte(web), nil, Policy{}); err == nil {
		t.Error("ParseManifest took the zero policy")
	}
}

func place(typ string, i int) (string, string) {
	return fmt.Sprintf("acme-shop-r3-%s-%d", typ, i), "/apps/acme/shop/work"
}

func TestConfigs(t *testing.T) {
	m, err := ParseManifest([]byte("web: ./server\nworker: ./work\nclock: ./clock\n"),
		[]byte(`{"instances":{"worker":1},"memory_mb":512,"env":{"B":"manifest","A":"manifest","PATH":"/app/bin"}}`), DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := m.Configs("acme", "shop", 3, map[string]int{"web": 2, "clock": 1}, map[string]string{"A": "app", "C": "app"}, DefaultPolicy(), place)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, fmt.Sprintf("%s %d %s %q %q", c.Type, c.Index, c.ID, c.Command, c.Health))
		if want := (Limits{512, 1000, 256, 1024, 64}); c.Limits != want {
			t.Errorf("%s: limits %+v; want %+v", c.ID, c.Limits, want)
		}
	}
	want := []string{
		`clock 0 acme-shop-r3-clock-0 "./clock" ""`,
		`web 0 acme-shop-r3-web-0 "./server" "/"`,
		`web 1 acme-shop-r3-web-1 "./server" "/"`,
		`worker 0 acme-shop-r3-worker-0 "./work" ""`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	wantEnv := []string{"A=app", "B=manifest", "C=app",
		"PORT=8080", "HOME=/apps/acme/shop/work", "PATH=/app/bin", "ENJIN_APP=shop", "ENJIN_TENANT=acme",
		"ENJIN_RELEASE=3", "ENJIN_PROCESS_TYPE=web", "ENJIN_INSTANCE=acme-shop-r3-web-1"}
	if !slices.Equal(cs[2].Env, wantEnv) {
		t.Errorf("env\ngot  %q\nwant %q", cs[2].Env, wantEnv)
	}
	cs, _ = m.Configs("acme", "shop", 3, nil, map[string]string{"PATH": "/mine"}, DefaultPolicy(), place)
	if !slices.Contains(cs[0].Env, "PATH=/mine") {
		t.Errorf("the env API's PATH does not win: %q", cs[0].Env)
	}
	plain, _ := ParseManifest([]byte(web), nil, DefaultPolicy())
	cs, _ = plain.Configs("acme", "shop", 1, nil, nil, DefaultPolicy(), place)
	if len(cs) != 1 || !slices.Contains(cs[0].Env, "PATH="+defaultPATH) {
		t.Errorf("got %+v; want one web instance with the default PATH", cs)
	}
}

func TestConfigsRefuses(t *testing.T) {
	m, _ := ParseManifest([]byte("web: ./server\nworker: ./w\n"), []byte(`{"env":{"A":"1"}}`), DefaultPolicy())
	small := DefaultPolicy()
	small.Max.MemoryMB, small.Default.MemoryMB = 128, 128
	for _, tt := range []struct {
		name  string
		m     Manifest
		scale map[string]int
		env   map[string]string
		p     Policy
		field string
	}{
		{"scale unknown type", m, map[string]int{"nope": 1}, nil, DefaultPolicy(), "scale.nope"},
		{"scale 21", m, map[string]int{"web": 21}, nil, DefaultPolicy(), "scale.web"},
		{"scale negative", m, map[string]int{"worker": -1}, nil, DefaultPolicy(), "scale.worker"},
		{"scale beyond the tenant's", m, map[string]int{"web": 20, "worker": 20}, nil, func() Policy { p := DefaultPolicy(); p.MaxTenantInstances = 30; return p }(), "instances"},
		{"env PORT", m, nil, map[string]string{"PORT": "1"}, DefaultPolicy(), "env.PORT"},
		{"env NUL", m, nil, map[string]string{"X": "\x00"}, DefaultPolicy(), "env.X"},
		{"env 128 more", m, nil, func() map[string]string {
			e := map[string]string{}
			for i := range 128 {
				e[fmt.Sprint("V", i)] = ""
			}
			return e
		}(), DefaultPolicy(), "env"},
		{"stored bad health", Manifest{Procfile: map[string]string{"web": "x"}, Health: "/%zz"}, nil, nil, DefaultPolicy(), "health"},
		{"stored bad command", Manifest{Procfile: map[string]string{"web": "x\x00"}}, nil, nil, DefaultPolicy(), "procfile.web"},
		{"stored bad type", Manifest{Procfile: map[string]string{"WEB": "x"}}, nil, nil, DefaultPolicy(), "Procfile"},
		{"stored no types", Manifest{}, nil, nil, DefaultPolicy(), "Procfile"},
		{"stored bad env", Manifest{Procfile: map[string]string{"web": "x"}, Env: map[string]string{"ENJIN_APP": "x"}}, nil, nil, DefaultPolicy(), "env.ENJIN_APP"},
		{"stored old pids", Manifest{Procfile: map[string]string{"web": "x"}, Pids: 4}, nil, nil, DefaultPolicy(), "pids"},
		{"policy shrank", m, nil, nil, small, "memory_mb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := tt.m.Configs("acme", "shop", 1, tt.scale, tt.env, tt.p, place)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("got %d configs, %v; want a *FieldError for %s", len(cs), err, tt.field)
			}
		})
	}
	// A stored manifest without defaults runs with the policy's.
	cs, err := Manifest{Procfile: map[string]string{"web": "x"}}.Configs("acme", "shop", 1, nil, nil, DefaultPolicy(), place)
	if err != nil || len(cs) != 1 || cs[0].Limits != DefaultPolicy().Default || cs[0].Health != "/" {
		t.Errorf("got %+v, %v; want one web instance with the default limits and health", cs, err)
	}
}

func TestReadManifest(t *testing.T) {
	write := func(t *testing.T, dir, name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		field string // "" for success
	}{
		{"good", func(t *testing.T, dir string) {
			write(t, dir, "Procfile", web)
			write(t, dir, "enjin.json", `{"pids":64}`)
		}, ""},
		{"no enjin.json", func(t *testing.T, dir string) { write(t, dir, "Procfile", web) }, ""},
		{"no Procfile", func(t *testing.T, dir string) {}, "Procfile"},
		{"Procfile a link", func(t *testing.T, dir string) {
			write(t, dir, "real", web)
			os.Symlink("real", filepath.Join(dir, "Procfile"))
		}, "Procfile"},
		{"Procfile a directory", func(t *testing.T, dir string) { os.Mkdir(filepath.Join(dir, "Procfile"), 0o755) }, "Procfile"},
		{"Procfile a FIFO", func(t *testing.T, dir string) { syscall.Mkfifo(filepath.Join(dir, "Procfile"), 0o644) }, "Procfile"},
		{"Procfile 70 KiB", func(t *testing.T, dir string) { write(t, dir, "Procfile", web+strings.Repeat("#\n", 35<<10)) }, "Procfile"},
		{"enjin.json a link", func(t *testing.T, dir string) {
			write(t, dir, "Procfile", web)
			os.Symlink("/etc/passwd", filepath.Join(dir, "enjin.json"))
		}, "enjin.json"},
		{"enjin.json a dangling link", func(t *testing.T, dir string) {
			write(t, dir, "Procfile", web)
			os.Symlink("nowhere", filepath.Join(dir, "enjin.json"))
		}, "enjin.json"},
		{"enjin.json bad", func(t *testing.T, dir string) {
			write(t, dir, "Procfile", web)
			write(t, dir, "enjin.json", `{"health":"/%zz"}`)
		}, "health"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			m, err := readManifest(dir, DefaultPolicy())
			if tt.field == "" {
				if err != nil || m.Procfile["web"] != "./server" {
					t.Fatalf("got %+v, %v; want the web type", m, err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("got %v; want a *FieldError for %s", err, tt.field)
			}
		})
	}
}

// FuzzManifest checks that no Procfile and enjin.json make ParseManifest or Configs panic,
// and that whatever is accepted runs within the policy: every refusal is a *FieldError,
// every instance has a command without NUL, limits within the maxima, an environment of
// valid names without NUL or repeats, and a health path net/http can request; and that the
// manifest survives being stored with its release.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(web), []byte(nil))
	f.Add([]byte("web: ./s\nworker: ./w\n"), []byte(`{"instances":{"worker":2},"memory_mb":64,"cpu_millis":500,"pids":32,"disk_mb":100,"tmp_mb":8,"health":"/h?x=%20","env":{"PATH":"/bin","A":"b"}}`))
	for _, h := range []string{"/healthz", "/a/b/?x=1&y=%2F;z", "/%41%2f%00", "/~user/@:!$&'()*+,;=", "/?", "/.././"} {
		f.Add([]byte(web), []byte(`{"health":"`+h+`"}`))
	}
	for _, tt := range badManifests {
		// The fuzzer minimizes every input that finds new code, which for the table's
		// oversize variants takes minutes; the table covers those.
		if len(tt.procfile)+len(tt.json) <= 4<<10 {
			f.Add([]byte(tt.procfile), []byte(tt.json))
		}
	}
	p := DefaultPolicy()
	f.Fuzz(func(t *testing.T, procfile, enjinJSON []byte) {
		m, err := ParseManifest(procfile, enjinJSON, p)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%q %q: %v is not a *FieldError", procfile, enjinJSON, err)
			}
			return
		}
		cs, err := m.Configs("acme", "shop", 1, nil, nil, p, place)
		if err != nil {
			t.Fatalf("%q %q: parsed as %+v, but Configs: %v", procfile, enjinJSON, m, err)
		}
		for _, c := range cs {
			checkConfig(t, c, p)
		}
		// A release keeps its manifest as JSON (app.json); what comes back runs the same.
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var stored Manifest
		if err := json.Unmarshal(b, &stored); err != nil || !reflect.DeepEqual(stored, m) {
			t.Fatalf("%+v stored as %s reads back as %+v, %v", m, b, stored, err)
		}
	})
}

func checkConfig(t *testing.T, c InstanceConfig, p Policy) {
	t.Helper()
	if c.Command == "" || strings.IndexByte(c.Command, 0) >= 0 {
		t.Fatalf("%s: command %q", c.ID, c.Command)
	}
	for _, f := range limits {
		if n := *f.of(&c.Limits); n < f.floor || n > *f.of(&p.Max) {
			t.Fatalf("%s: %s %d beyond the policy", c.ID, f.name, n)
		}
	}
	seen := map[string]bool{}
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envName.MatchString(k) || strings.IndexByte(kv, 0) >= 0 || seen[k] {
			t.Fatalf("%s: env entry %q", c.ID, kv)
		}
		seen[k] = true
	}
	if c.Type == "web" {
		req, err := http.NewRequest("GET", "http://127.0.0.1:8080"+c.Health, nil)
		if err != nil {
			t.Fatalf("%s: health %q: %v", c.ID, c.Health, err)
		}
		if got := req.URL.RequestURI(); got != c.Health {
			t.Fatalf("%s: health %q is requested as %q", c.ID, c.Health, got)
		}
	} else if c.Health != "" {
		t.Fatalf("%s: health %q for a non-web type", c.ID, c.Health)
	}
}

// manyCron is n scheduled jobs, as enjin.json's "cron" members.
func manyCron(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"j%d":{"schedule":"@hourly","command":"true"}`, i))
	}
	return strings.Join(parts, ",")
}
