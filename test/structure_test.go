package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// listedPackage is the part of `go list -json` output these tests read.
type listedPackage struct {
	Dir        string
	ImportPath string
	Name       string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// listPackages runs `go list -e -json ./...` at the module root.
func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	root := moduleRoot(t)
	cmd := exec.CommandContext(t.Context(), "go", "list", "-e", "-json", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", root, err, stderrOf(err))
	}
	var pkgs []listedPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v\n%s", err, stderrOf(err))
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatalf("go env GOMOD = %q: not inside a module", gomod)
	}
	return filepath.Dir(gomod)
}

func stderrOf(err error) []byte {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.Stderr
	}
	return nil
}

// STYLE 3 and 14: every package has exactly one doc comment, and no package has a
// grab-bag name.
func TestEveryPackageHasOneDocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Error != nil {
			t.Errorf("%s: go list: %s", p.ImportPath, p.Error.Err)
			continue
		}
		if slices.Contains([]string{"util", "common", "types", "helpers"}, p.Name) {
			t.Errorf("%s: package name %q is forbidden by STYLE 14", p.ImportPath, p.Name)
		}
		files := slices.Concat(p.GoFiles, p.CgoFiles)
		if len(files) == 0 {
			continue // test-only package, such as enjin/test
		}
		for _, msg := range checkDocComments(p, files) {
			t.Errorf("%s: %s", p.ImportPath, msg)
		}
	}
}

// checkDocComments returns a message for each way the package's doc comment is wrong.
func checkDocComments(p listedPackage, files []string) []string {
	var msgs, withDoc []string
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil,
			parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			msgs = append(msgs, err.Error())
			continue
		}
		if f.Doc == nil {
			continue
		}
		withDoc = append(withDoc, name)
		if want, ok := docPrefixOK(p, f.Doc.Text()); !ok {
			msgs = append(msgs, fmt.Sprintf("%s: doc comment starts %q, want %s",
				name, firstLine(f.Doc.Text()), want))
		}
	}
	if len(withDoc) != 1 {
		msgs = append(msgs, fmt.Sprintf("got %d doc comments want 1 (in %v of %v)",
			len(withDoc), withDoc, files))
	}
	return msgs
}

// docPrefixOK reports whether doc opens the way godoc expects for p, and if not,
// what it should open with.
func docPrefixOK(p listedPackage, doc string) (want string, ok bool) {
	if p.Name != "main" {
		want = "Package " + p.Name + " "
		return fmt.Sprintf("%q", want), strings.HasPrefix(doc, want)
	}
	dir := filepath.Base(p.Dir)
	prefixes := []string{
		"Command " + dir + " ",
		strings.ToUpper(dir[:1]) + dir[1:] + " ", // "Enjin is ..."
	}
	for _, pre := range prefixes {
		if strings.HasPrefix(doc, pre) {
			return "", true
		}
	}
	return fmt.Sprintf("%q or %q", prefixes[0], prefixes[1]), false
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// An importRule says which module packages the packages matching pkg may import
// directly. Patterns are import paths in which "*" matches one path element and a
// trailing "/..." matches the path itself and everything below it. A "*" in an allow
// pattern stands for the element that "*" matched in pkg, so "enjin/rings/*/..."
// lets a ring import its own subpackages but not another ring's.
type importRule struct {
	pkg     string
	allow   []string
	stdOnly bool // no third-party imports either
}

// importRules encodes DESIGN §7: cmd/enjin → rings/* → services/*, supervisors/* →
// bus, keys, schema → rings. The first rule whose pkg matches applies; a module
// package no rule matches is itself a failure, so new packages get a rule.
var importRules = []importRule{
	{pkg: "enjin/rings", stdOnly: true},
	{pkg: "enjin/keys", allow: []string{"enjin/rings"}},
	{pkg: "enjin/bus", allow: []string{"enjin/keys", "enjin/rings"}},
	{pkg: "enjin/bus/...", allow: []string{"enjin/bus", "enjin/keys", "enjin/rings"}},
	{pkg: "enjin/schema/...", allow: []string{"enjin/rings"}},
	{pkg: "enjin/services/appapi", allow: []string{"enjin/rings"}}, // the app API's contract: apphost, ring 0 and the CLI share it
	{pkg: "enjin/services/...", allow: middle},
	{pkg: "enjin/supervisors/...", allow: middle},
	{pkg: "enjin/guest", allow: []string{"enjin/bus", "enjin/keys", "enjin/rings"}},
	{pkg: "enjin/rings/*/...", allow: append([]string{"enjin/rings/*/..."}, middle...)},
	{pkg: "enjin/cmd/...", allow: append([]string{"enjin/rings/...", "enjin/guest"}, middle...)},
	{pkg: "enjin/test/...", allow: append([]string{"enjin/test/...", "enjin/rings/...", "enjin/guest"}, middle...)},
}

// middle is what services and supervisors may import, and everything above them too. guest
// is among them: it stands on bus, keys and rings only, and its metadata is the contract
// between a VM and the host that makes it (services/vmhost).
var middle = []string{
	"enjin/services/...", "enjin/supervisors/...", "enjin/guest",
	"enjin/bus/...", "enjin/keys", "enjin/schema/...", "enjin/rings",
}

// noDriver lists the packages that must not reach the database driver, even
// transitively: DESIGN §7, "Rings 1 and 2 never import the database driver".
var noDriver = struct {
	pkgs    []string
	forbid  string // import path prefix
	because string
}{
	pkgs:    []string{"enjin/bus/...", "enjin/keys", "enjin/rings", "enjin/rings/ring1/...", "enjin/rings/ring2/...", "enjin/guest"},
	forbid:  "github.com/jackc/",
	because: "rings 1 and 2 and the shared packages never reach the database driver",
}

// DESIGN §7 and STYLE 2: imports point one way, and a test says so.
func TestImportDirection(t *testing.T) {
	t.Run("self-check", testImportRulesCatch)
	pkgs := listPackages(t)
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("%s: go list: %s", p.ImportPath, p.Error.Err)
		}
	}
	for _, v := range checkImports(pkgs) {
		t.Error(v)
	}
}

// testImportRulesCatch feeds fabricated forbidden edges to checkImports, so that a
// broken rule table or matcher cannot pass silently.
func testImportRulesCatch(t *testing.T) {
	pkgs := []listedPackage{
		{ImportPath: "enjin/rings", Imports: []string{"fmt", "github.com/nats-io/nats.go"}},
		{ImportPath: "enjin/bus", Imports: []string{"enjin/keys", "enjin/rings/ring0"}},
		{ImportPath: "enjin/rings/ring1", Deps: []string{"enjin/bus", "github.com/jackc/pgx/v5"}},
		{ImportPath: "enjin/rings/ring0", Imports: []string{"enjin/rings/ring1", "enjin/rings/ring0/api"}},
		{ImportPath: "enjin/services/dns", Imports: []string{"enjin/cmd/enjin", "enjin/test/harness"}},
		{ImportPath: "enjin/store"},
		// Allowed edges, which must not be reported.
		{ImportPath: "enjin/rings/ring0/api", Imports: []string{"enjin/services/inventory", "github.com/jackc/pgx/v5"}},
		{ImportPath: "enjin/test/harness", Imports: []string{"enjin/bus/broker", "enjin/rings/ring2"}},
	}
	want := []string{
		"enjin/rings imports github.com/nats-io/nats.go: forbidden by §7",
		"enjin/bus imports enjin/rings/ring0: forbidden by §7",
		"enjin/rings/ring1 depends on github.com/jackc/pgx/v5: forbidden by §7",
		"enjin/rings/ring0 imports enjin/rings/ring1: forbidden by §7",
		"enjin/services/dns imports enjin/cmd/enjin: forbidden by §7",
		"enjin/services/dns imports enjin/test/harness: forbidden by §7",
		"enjin/store: no §7 import rule covers this package; add one to importRules",
	}
	got := checkImports(pkgs)
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("fabricated violation not reported: want %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d violations want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

// checkImports returns one message per forbidden edge among pkgs.
func checkImports(pkgs []listedPackage) []string {
	var bad []string
	for _, p := range pkgs {
		rule, self, ok := ruleFor(p.ImportPath)
		if !ok {
			bad = append(bad, p.ImportPath+": no §7 import rule covers this package; add one to importRules")
			continue
		}
		for _, imp := range p.Imports {
			if !rule.permits(imp, self) {
				bad = append(bad, fmt.Sprintf("%s imports %s: forbidden by §7", p.ImportPath, imp))
			}
		}
		bad = append(bad, checkDriver(p)...)
	}
	return bad
}

func checkDriver(p listedPackage) []string {
	if !slices.ContainsFunc(noDriver.pkgs, func(pat string) bool {
		_, ok := match(pat, p.ImportPath)
		return ok
	}) {
		return nil
	}
	var bad []string
	for _, dep := range p.Deps {
		if strings.HasPrefix(dep, noDriver.forbid) {
			bad = append(bad, fmt.Sprintf("%s depends on %s: forbidden by §7 (%s)",
				p.ImportPath, dep, noDriver.because))
		}
	}
	return bad
}

// ruleFor returns the first rule matching path and what its "*" matched.
func ruleFor(path string) (importRule, string, bool) {
	for _, r := range importRules {
		if star, ok := match(r.pkg, path); ok {
			return r, star, true
		}
	}
	return importRule{}, "", false
}

// permits reports whether a package under r may import imp; star is the element
// the rule's "*" matched in the importing package.
func (r importRule) permits(imp, star string) bool {
	switch {
	case isStandard(imp):
		return true
	case !isModule(imp):
		return !r.stdOnly
	}
	return slices.ContainsFunc(r.allow, func(pat string) bool {
		_, ok := match(strings.Replace(pat, "*", star, 1), imp)
		return ok
	})
}

func isModule(path string) bool { return path == "enjin" || strings.HasPrefix(path, "enjin/") }

// isStandard uses the go command's own rule: standard library paths have no dot in
// their first element. The module path "enjin" has none either, so it is excluded.
func isStandard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !isModule(path) && !strings.Contains(first, ".")
}

// match reports whether path matches pat, and what pat's "*" element matched.
func match(pat, path string) (star string, ok bool) {
	pe, pathElems := strings.Split(pat, "/"), strings.Split(path, "/")
	if pe[len(pe)-1] == "..." {
		pe = pe[:len(pe)-1]
		if len(pathElems) < len(pe) {
			return "", false
		}
		pathElems = pathElems[:len(pe)]
	}
	if len(pe) != len(pathElems) {
		return "", false
	}
	for i, e := range pe {
		switch e {
		case "*":
			star = pathElems[i]
		case pathElems[i]:
		default:
			return "", false
		}
	}
	return star, true
}
