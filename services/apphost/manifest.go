package apphost

import (
	"bytes"
	"enjin/services/appapi"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Manifest is what a bundle declares: its process types (from the Procfile, Heroku style:
// `web: ./server`) and, from an optional enjin.json, instances per type, limits, the
// health-check path and environment. ParseManifest fills in every default, so a release's
// manifest says what it runs with; it is stored with the release (app.json), which is why
// Configs checks it again before anything runs from it. Its wire form is appapi.Manifest;
// this type adds what a host does with one.
type Manifest appapi.Manifest

// Bounds on what a tenant may write, whatever the policy.
const (
	maxManifestFile = 64 << 10 // Procfile, enjin.json
	maxCommand      = 4 << 10
	maxHealth       = 1024
	maxEnvEntries   = 128
	maxEnvValue     = 32 << 10
	maxEnvTotal     = 256 << 10 // all of KEY=VALUE together
	defaultPATH     = "/usr/local/bin:/usr/bin:/bin"
)

// FieldError says which part of a tenant's input is wrong and why. Every refusal of
// ParseManifest, CheckEnv, ValidEnvName and Configs (but for a bad Policy) is one, so the API
// edge can answer 4xx with it as is.
type FieldError struct {
	File  string // "Procfile" or "enjin.json"; "" for a request's values (scale, env)
	Line  int    // the Procfile line, when there is one
	Field string // JSON-pointer-ish: health, memory_mb, env.FOO, instances.web, procfile.web, Procfile
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, " line %d", e.Line)
		}
		b.WriteString(": ")
	}
	field := e.Field
	if e.File == "Procfile" {
		field = strings.TrimPrefix(field, "procfile.")
	}
	if field != "" && field != e.File {
		b.WriteString(field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func procfileErr(line int, field, format string, args ...any) error {
	return &FieldError{File: "Procfile", Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func jsonErr(field, format string, args ...any) error {
	return &FieldError{File: "enjin.json", Field: field, Msg: fmt.Sprintf(format, args...)}
}

// inFile marks err, a FieldError about a value, as coming from file.
func inFile(err error, file string) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		fe.File = file
	}
	return err
}

// ParseManifest reads a bundle's Procfile and enjin.json (nil or empty: there is none),
// checks every field against p and fills in p's defaults. Every refusal is a *FieldError; an
// invalid p is the operator's error and is reported as such.
func ParseManifest(procfile, enjinJSON []byte, p Policy) (Manifest, error) {
	if err := p.Validate(); err != nil {
		return Manifest{}, err
	}
	procs, err := parseProcfile(procfile, p)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{Procfile: procs}
	if len(enjinJSON) > 0 {
		if err := decodeEnjinJSON(enjinJSON, &m); err != nil {
			return Manifest{}, err
		}
	}
	m.normalize(p)
	if err := m.check(p); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// normalize fills in what the manifest leaves out.
func (m *Manifest) normalize(p Policy) {
	inst := map[string]int{}
	for t, n := range m.Instances {
		inst[t] = n // unknown types too, for check to refuse
	}
	for t := range m.Procfile {
		if _, set := inst[t]; !set {
			inst[t] = 0
			if t == "web" {
				inst[t] = 1
			}
		}
	}
	m.Instances = inst
	l := m.Limits().or(p.Default)
	m.MemoryMB, m.CPUMillis, m.Pids, m.DiskMB, m.TmpMB = l.MemoryMB, l.CPUMillis, l.Pids, l.DiskMB, l.TmpMB
	if m.Health == "" {
		m.Health = "/"
	}
	if len(m.Env) == 0 {
		m.Env = nil // as it reads back from the release's JSON
	}
}

// Limits is what the manifest asks for; a zero field (only in a manifest ParseManifest did
// not make) stands for the policy's default, which Configs applies.
func (m Manifest) Limits() Limits {
	return Limits{MemoryMB: m.MemoryMB, CPUMillis: m.CPUMillis, Pids: m.Pids, DiskMB: m.DiskMB, TmpMB: m.TmpMB}
}

// check applies every rule to a manifest, whoever made it. Zero limits, an empty health
// path and missing instance counts stand for the defaults.
func (m Manifest) check(p Policy) error {
	if len(m.Procfile) == 0 {
		return procfileErr(0, "Procfile", "declares no process type")
	}
	if len(m.Procfile) > p.MaxProcessTypes {
		return procfileErr(0, "Procfile", "%d process types; at most %d", len(m.Procfile), p.MaxProcessTypes)
	}
	for _, t := range keysOf(m.Procfile) {
		if err := checkType(t); err != nil {
			return procfileErr(0, "Procfile", "%v", err)
		}
		if err := checkCommand(m.Procfile[t]); err != nil {
			return procfileErr(0, "procfile."+t, "%v", err)
		}
	}
	if err := checkInstances(m.Instances, m.Procfile, "instances", p); err != nil {
		return inFile(err, "enjin.json")
	}
	if err := checkTotal(m.Instances, p); err != nil {
		return inFile(err, "enjin.json")
	}
	if err := checkLimits(m.Limits(), p); err != nil {
		return inFile(err, "enjin.json")
	}
	if m.Health != "" {
		if err := checkHealth(m.Health); err != nil {
			return jsonErr("health", "%v", err)
		}
	}
	if err := checkNetworks(m.Networks); err != nil {
		return err
	}
	if err := checkCron(m.Cron); err != nil {
		return err
	}
	return inFile(CheckEnv(m.Env), "enjin.json")
}

// parseProcfile reads `type: command` lines; blank lines and # comments are skipped.
func parseProcfile(b []byte, p Policy) (map[string]string, error) {
	switch {
	case len(b) > maxManifestFile:
		return nil, procfileErr(0, "Procfile", "%d bytes; at most %d", len(b), maxManifestFile)
	case !utf8.Valid(b):
		return nil, procfileErr(0, "Procfile", "not valid UTF-8")
	case bytes.IndexByte(b, 0) >= 0:
		return nil, procfileErr(0, "Procfile", "has a NUL byte")
	}
	procs := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		if !ok {
			return nil, procfileErr(n+1, "Procfile", "want `type: command`")
		}
		if err := checkType(name); err != nil {
			return nil, procfileErr(n+1, "Procfile", "%v", err)
		}
		if _, dup := procs[name]; dup {
			return nil, procfileErr(n+1, "procfile."+name, "declared twice")
		}
		if err := checkCommand(cmd); err != nil {
			return nil, procfileErr(n+1, "procfile."+name, "%v", err)
		}
		if len(procs) == p.MaxProcessTypes {
			return nil, procfileErr(n+1, "Procfile", "more than %d process types", p.MaxProcessTypes)
		}
		procs[name] = cmd
	}
	if len(procs) == 0 {
		return nil, procfileErr(0, "Procfile", "declares no process type")
	}
	return procs, nil
}

var procName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,30}$`)

func checkType(t string) error {
	if !procName.MatchString(t) {
		return fmt.Errorf("type %s: want a lowercase letter, then up to 30 of a-z, 0-9, _ and -", quote(t))
	}
	return nil
}

func checkCommand(cmd string) error {
	switch {
	case cmd == "":
		return errors.New("empty command")
	case len(cmd) > maxCommand:
		return fmt.Errorf("command of %d bytes; at most %d", len(cmd), maxCommand)
	case !utf8.ValidString(cmd):
		return errors.New("command is not valid UTF-8")
	}
	for i, r := range cmd {
		if r != '\t' && unicode.IsControl(r) {
			return fmt.Errorf("command has control character %U at byte %d", r, i)
		}
	}
	return nil
}

// checkInstances checks counts per type (the manifest's, or a request's scale) against the
// declared types and p; field names them ("instances" or "scale").
func checkInstances(counts map[string]int, procs map[string]string, field string, p Policy) error {
	for _, t := range keysOf(counts) {
		if _, ok := procs[t]; !ok {
			return &FieldError{Field: field + "." + fieldKey(t), Msg: "not a process type of the Procfile"}
		}
		if n := counts[t]; n < 0 || n > p.MaxInstances {
			return &FieldError{Field: field + "." + t, Msg: fmt.Sprintf("%d instances; want 0–%d", n, p.MaxInstances)}
		}
	}
	return nil
}

// checkTotal refuses an app that alone would run more instances than its tenant may.
func checkTotal(counts map[string]int, p Policy) error {
	total := 0
	for _, n := range counts {
		total += n
	}
	if total > p.MaxTenantInstances {
		return &FieldError{Field: "instances", Msg: fmt.Sprintf("%d instances in all; a tenant may run at most %d", total, p.MaxTenantInstances)}
	}
	return nil
}

// checkHealth makes sure h is a path the health checker can request as is: an origin-form
// request target (RFC 9112 §3.2.1) of RFC 3986 characters, which net/http sends unchanged.
func checkHealth(h string) error {
	switch {
	case len(h) > maxHealth:
		return fmt.Errorf("%d bytes; at most %d", len(h), maxHealth)
	case !strings.HasPrefix(h, "/"):
		return fmt.Errorf("%s: want a path starting with /", quote(h))
	case strings.HasPrefix(h, "//"):
		return fmt.Errorf("%s: starts with //, which names a host", quote(h))
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '%':
			if i+2 >= len(h) || !isHex(h[i+1]) || !isHex(h[i+2]) {
				return fmt.Errorf("%s: broken percent-escape at byte %d", quote(h), i)
			}
		case c == '#':
			return fmt.Errorf("%s: a fragment (#) is never sent", quote(h))
		case c <= ' ' || c >= 0x7f:
			return fmt.Errorf("%s: byte %d is not printable ASCII", quote(h), i)
		case !isTargetChar(c):
			return fmt.Errorf("%s: %q at byte %d is not allowed in a URL", quote(h), c, i)
		}
	}
	u, err := url.Parse(h)
	if err != nil {
		return fmt.Errorf("%s: %v", quote(h), err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return fmt.Errorf("%s: want a path, not a URL", quote(h))
	}
	req, err := http.NewRequest("GET", "http://127.0.0.1:8080"+h, nil)
	if err != nil {
		return fmt.Errorf("%s: %v", quote(h), err)
	}
	if got := req.URL.RequestURI(); got != h {
		return fmt.Errorf("%s: would be requested as %s", quote(h), quote(got))
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isTargetChar: RFC 3986 unreserved, sub-delims, ":", "@", "/" and "?" (the query).
func isTargetChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// ValidEnvName says whether an app may set the environment variable name: a shell-style
// name of at most 128 bytes that the platform does not set itself (PORT, HOME, ENJIN_*).
// PATH is the app's to change.
func ValidEnvName(name string) error {
	f := "env." + fieldKey(name)
	switch {
	case !envName.MatchString(name):
		return &FieldError{Field: f, Msg: "want a letter or _, then up to 127 letters, digits and _"}
	case name == "PORT" || name == "HOME" || strings.HasPrefix(name, "ENJIN_"):
		return &FieldError{Field: f, Msg: "set by the platform"}
	}
	return nil
}

// CheckEnv applies the rules for an app's environment, from a manifest or the env API: at
// most 128 variables with valid names (ValidEnvName), each value valid UTF-8 without NUL and
// at most 32 KiB, all of them together at most 256 KiB.
func CheckEnv(env map[string]string) error {
	if len(env) > maxEnvEntries {
		return &FieldError{Field: "env", Msg: fmt.Sprintf("%d variables; at most %d", len(env), maxEnvEntries)}
	}
	total := 0
	for _, k := range keysOf(env) {
		if err := ValidEnvName(k); err != nil {
			return err
		}
		v := env[k]
		switch {
		case len(v) > maxEnvValue:
			return &FieldError{Field: "env." + k, Msg: fmt.Sprintf("value of %d bytes; at most %d", len(v), maxEnvValue)}
		case !utf8.ValidString(v):
			return &FieldError{Field: "env." + k, Msg: "value is not valid UTF-8"}
		case strings.IndexByte(v, 0) >= 0:
			return &FieldError{Field: "env." + k, Msg: "value has a NUL byte"}
		}
		total += len(k) + 1 + len(v)
	}
	if total > maxEnvTotal {
		return &FieldError{Field: "env", Msg: fmt.Sprintf("%d bytes in all; at most %d", total, maxEnvTotal)}
	}
	return nil
}

// quote shows a tenant's string in a message: quoted, and cut if long.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}

// fieldKey is a tenant's key as it appears in FieldError.Field: as is if it is short
// printable ASCII, quoted otherwise.
func fieldKey(s string) string {
	if s == "" || len(s) > 64 {
		return quote(s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' {
			return quote(s)
		}
	}
	return s
}

// readManifest reads the Procfile and enjin.json of an unpacked bundle in dir.
func readManifest(dir string, p Policy) (Manifest, error) {
	procfile, err := readBundleFile(dir, "Procfile")
	if errors.Is(err, os.ErrNotExist) {
		return Manifest{}, procfileErr(0, "Procfile", "the bundle has none")
	}
	if err != nil {
		return Manifest{}, err
	}
	enjinJSON, err := readBundleFile(dir, "enjin.json")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Manifest{}, err
	}
	return ParseManifest(procfile, enjinJSON, p)
}

// readBundleFile reads name in dir if it is a regular file (not a link, a FIFO, a device)
// of at most maxManifestFile bytes.
func readBundleFile(dir, name string) ([]byte, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &FieldError{File: name, Field: name, Msg: "a symbolic link; want a regular file"}
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &FieldError{File: name, Field: name, Msg: "not a regular file"}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxManifestFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxManifestFile {
		return nil, &FieldError{File: name, Field: name, Msg: fmt.Sprintf("more than %d bytes", maxManifestFile)}
	}
	return b, nil
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
