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
	Dir          string
	ImportPath   string
	Name         string
	GoFiles      []string
	CgoFiles     []string
	Imports      []string
	TestImports  []string // of the package's own _test.go files
	XTestImports []string // of its package x_test files
	Deps         []string
	Error        *struct{ Err string }
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

// Every package has exactly one doc comment, and no package has a grab-bag name.
func TestStructureDocComments(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Error != nil {
			t.Errorf("%s: go list: %s", p.ImportPath, p.Error.Err)
			continue
		}
		if slices.Contains([]string{"util", "common", "types", "helpers"}, p.Name) {
			t.Errorf("%s: package name %q is a grab bag: name it for what it holds", p.ImportPath, p.Name)
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

// layers says which module packages each package may import. Imports point one way, from
// the binary down to the shared vocabulary:
//
//	cmd → rings → services → supervisors → bus → keys → vocabulary
//
// with schema (the store's migrations), guest (a VM's side, whose metadata services/vmhost
// writes) and contracts (bodies both sides of an API share) beside the chain, bench (the
// benchmarks of `enjin bench`, which only cmd imports) beside the rings, and test above it
// all. A layer may import only the layers it names, itself only if it names itself (the
// rings do not: ring 0 never imports ring 1); a package may always import its own entry's
// packages ("enjin/rings/ring0/..." lets ring 0 import its subpackages). A package's tests
// may import what it may, the package itself, and the layer's tests list besides.
//
// Every package go list finds must be in exactly one layer, so a new package is one line in
// the layer it belongs to. An entry may name a package that does not exist yet.
var layers = []layer{
	{name: "vocabulary", stdOnly: true, pkgs: []string{
		"enjin", // the shared types: standard library only
	}},
	{name: "keys", imports: []string{"vocabulary"}, pkgs: []string{
		"enjin/keys",
	}},
	{name: "schema", imports: []string{"vocabulary"}, pkgs: []string{
		"enjin/schema",
	}},
	{name: "bus", imports: []string{"bus", "keys", "vocabulary"}, tests: testSupport, pkgs: []string{
		"enjin/bus",
		"enjin/bus/broker",
	}},
	{name: "guest", imports: []string{"bus", "keys", "vocabulary"}, tests: testSupport, pkgs: []string{
		"enjin/guest",
	}},
	{name: "contracts", imports: []string{"vocabulary"}, pkgs: []string{
		"enjin/services/appapi", // the app API's bodies: apphost, ring 0 and the CLI share them
	}},
	{name: "supervisors", imports: []string{"supervisors", "bus", "keys", "vocabulary"}, tests: testSupport, pkgs: []string{
		"enjin/supervisors/dhcpd",
		"enjin/supervisors/fabric",
		"enjin/supervisors/libvirt",
		"enjin/supervisors/netseg",
		"enjin/supervisors/portguard",
		"enjin/supervisors/process",
		"enjin/supervisors/sandbox",
	}},
	{name: "services", imports: []string{"services", "contracts", "supervisors", "guest", "bus", "keys", "schema", "vocabulary"}, tests: testSupport, pkgs: []string{
		"enjin/services/api",
		"enjin/services/apphost",
		"enjin/services/backup",
		"enjin/services/dns",
		"enjin/services/images",
		"enjin/services/inventory",
		"enjin/services/issuer",
		"enjin/services/postgres",
		"enjin/services/router",
		"enjin/services/vmhost",
		"enjin/services/webui",
	}},
	{name: "rings", imports: []string{"services", "contracts", "supervisors", "guest", "bus", "keys", "schema", "vocabulary"}, tests: testSupport, pkgs: []string{
		"enjin/rings/ring0/...",
		"enjin/rings/ring1/...",
	}},
	{name: "bench", imports: []string{"services", "contracts", "supervisors", "guest", "bus", "keys", "schema", "vocabulary"}, tests: testSupport, pkgs: []string{
		"enjin/bench", // `enjin bench`: beside the rings, below cmd, which alone imports it
	}},
	{name: "cmd", imports: []string{"bench", "rings", "services", "contracts", "supervisors", "guest", "bus", "keys", "schema", "vocabulary"}, pkgs: []string{
		"enjin/cmd/enjin",
	}},
	{name: "test", imports: []string{"test", "rings", "services", "contracts", "supervisors", "guest", "bus", "keys", "schema", "vocabulary"}, pkgs: []string{
		"enjin/test",
		"enjin/test/harness",
		"enjin/test/probe",
		"enjin/test/sampleapp",
	}},
}

// testSupport is what tests below the test layer may import besides: the real broker, a
// throwaway PostgreSQL and the rest of test/harness. Nothing else from the test layer.
var testSupport = []string{"enjin/test/harness"}

// testEdges are single imports one package's tests make beyond its layer's, each with why.
var testEdges = []testEdge{
	{from: "enjin/bus/broker", to: "enjin/services/inventory",
		why: "TestMembersShareAccounts shares accounts through the real store, ring 0's broker.Share"},
}

// noDriver lists the packages that must not reach the database driver, even transitively:
// rings 1 and 2 and what they stand on never talk to the store but over the bus.
var noDriver = struct {
	pkgs    []string
	forbid  string // import path prefix
	because string
}{
	pkgs:    []string{"enjin/bus/...", "enjin/keys", "enjin", "enjin/rings/ring1/...", "enjin/rings/ring2/...", "enjin/guest"},
	forbid:  "github.com/jackc/",
	because: "rings 1 and 2 and the shared packages never reach the database driver",
}

// Imports point one way, tests' imports included, and this test says so.
func TestStructureImports(t *testing.T) {
	for _, msg := range checkLayers(layers) {
		t.Error(msg)
	}
	pkgs := listPackages(t)
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("%s: go list: %s", p.ImportPath, p.Error.Err)
		}
	}
	for _, v := range checkImports(layers, testEdges, pkgs) {
		t.Error(v)
	}
}

// The production binary does not link package testing (nor anything of the test tree):
// `enjin bench` times its loops itself.
func TestStructureBinaryLinksNoTests(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != "enjin/cmd/enjin" {
			continue
		}
		if len(p.Deps) == 0 {
			t.Fatal("go list gave enjin/cmd/enjin no dependencies")
		}
		for _, d := range p.Deps {
			if d == "testing" || strings.HasPrefix(d, "testing/") || strings.HasPrefix(d, "enjin/test") {
				t.Errorf("enjin/cmd/enjin links %s", d)
			}
		}
		return
	}
	t.Fatal("go list did not list enjin/cmd/enjin")
}
