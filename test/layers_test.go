package test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A layer is a set of module packages that may import the same things (see layers).
type layer struct {
	name string
	// pkgs are its packages, one a line: an import path, or "p/..." for p and every package
	// below it.
	pkgs []string
	// imports are the layers its packages may import; its own only if named.
	imports []string
	// tests are packages its packages' tests may import besides what the packages may.
	tests   []string
	stdOnly bool // no import beyond the standard library
}

// A testEdge lets one package's tests import one package more than its layer's tests may.
type testEdge struct{ from, to, why string }

// checkLayers returns a message for each mistake in the table itself: a layer named twice or
// not at all, a package in two layers.
func checkLayers(ls []layer) []string {
	var bad []string
	names := map[string]bool{}
	owner := map[string]string{}
	for _, l := range ls {
		if names[l.name] {
			bad = append(bad, fmt.Sprintf("layer %s is defined twice", l.name))
		}
		names[l.name] = true
		for _, p := range l.pkgs {
			if o, dup := owner[p]; dup {
				bad = append(bad, fmt.Sprintf("%s is in layers %s and %s", p, o, l.name))
			}
			owner[p] = l.name
		}
	}
	for _, l := range ls {
		for _, n := range l.imports {
			if !names[n] {
				bad = append(bad, fmt.Sprintf("layer %s may import layer %s, which is not defined", l.name, n))
			}
		}
	}
	return bad
}

// checkImports returns one message per forbidden edge among pkgs: each package's imports,
// its tests' imports, and what it depends on transitively (the database driver).
func checkImports(ls []layer, edges []testEdge, pkgs []listedPackage) []string {
	var bad []string
	for _, p := range pkgs {
		l, entry, ok := layerOf(ls, p.ImportPath)
		if !ok {
			bad = append(bad, p.ImportPath+" is in no layer: add it to one in layers (test/structure_test.go)")
			continue
		}
		for _, imp := range p.Imports {
			if !l.permits(ls, entry, imp) {
				bad = append(bad, fmt.Sprintf("%s imports %s: layer %s may import %s", p.ImportPath, imp, l.name, l.may()))
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if imp == p.ImportPath || l.permits(ls, entry, imp) || slices.Contains(l.tests, imp) ||
				slices.ContainsFunc(edges, func(e testEdge) bool { return e.from == p.ImportPath && e.to == imp }) {
				continue
			}
			bad = append(bad, fmt.Sprintf("%s's tests import %s: tests of layer %s may import %s, the package itself and %s",
				p.ImportPath, imp, l.name, l.may(), orNothing(l.tests)))
		}
		bad = append(bad, checkDriver(p)...)
	}
	return bad
}

func orNothing(pkgs []string) string {
	if len(pkgs) == 0 {
		return "nothing else"
	}
	return strings.Join(pkgs, ", ")
}

// may says in words what l's packages may import.
func (l layer) may() string {
	switch {
	case l.stdOnly:
		return "only the standard library"
	case len(l.imports) == 0:
		return "no module package"
	}
	return "only the layers " + strings.Join(l.imports, ", ")
}

// layerOf returns the layer holding path, and the entry of its pkgs that matched.
func layerOf(ls []layer, path string) (layer, string, bool) {
	for _, l := range ls {
		for _, e := range l.pkgs {
			if match(e, path) {
				return l, e, true
			}
		}
	}
	return layer{}, "", false
}

// permits reports whether a package of l, under entry, may import imp.
func (l layer) permits(ls []layer, entry, imp string) bool {
	switch {
	case isStandard(imp):
		return true
	case !isModule(imp):
		return !l.stdOnly
	case match(entry, imp):
		return true
	}
	to, _, ok := layerOf(ls, imp)
	return ok && slices.Contains(l.imports, to.name)
}

func checkDriver(p listedPackage) []string {
	if !slices.ContainsFunc(noDriver.pkgs, func(pat string) bool { return match(pat, p.ImportPath) }) {
		return nil
	}
	var bad []string
	for _, dep := range p.Deps {
		if strings.HasPrefix(dep, noDriver.forbid) {
			bad = append(bad, fmt.Sprintf("%s depends on %s: %s", p.ImportPath, dep, noDriver.because))
		}
	}
	return bad
}

func isModule(path string) bool { return path == "enjin" || strings.HasPrefix(path, "enjin/") }

// isStandard uses the go command's own rule: standard library paths have no dot in
// their first element. The module path "enjin" has none either, so it is excluded.
func isStandard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !isModule(path) && !strings.Contains(first, ".")
}

// match reports whether path is pat, or, for pat "p/...", p or a package below it.
func match(pat, path string) bool {
	if p, ok := strings.CutSuffix(pat, "/..."); ok {
		return path == p || strings.HasPrefix(path, p+"/")
	}
	return path == pat
}

// TestStructureImportCheck feeds the real layers forbidden and allowed edges, so that a
// broken table or checker cannot pass silently: each forbidden one must be reported, once,
// and no allowed one.
func TestStructureImportCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		pkg  listedPackage
		want string // the report's start; "" for an allowed edge
	}{
		// Forbidden.
		{"a lower layer importing a higher one",
			listedPackage{ImportPath: "enjin/bus", Imports: []string{"enjin/keys", "enjin/rings/ring0"}},
			"enjin/bus imports enjin/rings/ring0: layer bus may import only the layers bus, keys, vocabulary"},
		{"keys importing bus", listedPackage{ImportPath: "enjin/keys", Imports: []string{"enjin/bus"}},
			"enjin/keys imports enjin/bus: "},
		{"the vocabulary importing a third-party package",
			listedPackage{ImportPath: "enjin", Imports: []string{"fmt", "github.com/nats-io/nats.go"}},
			"enjin imports github.com/nats-io/nats.go: layer vocabulary may import only the standard library"},
		{"one ring importing another", listedPackage{ImportPath: "enjin/rings/ring0", Imports: []string{"enjin/rings/ring1"}},
			"enjin/rings/ring0 imports enjin/rings/ring1: "},
		{"a service importing a ring", listedPackage{ImportPath: "enjin/services/dns", Imports: []string{"enjin/rings/ring1"}},
			"enjin/services/dns imports enjin/rings/ring1: "},
		{"a service importing cmd", listedPackage{ImportPath: "enjin/services/dns", Imports: []string{"enjin/cmd/enjin"}},
			"enjin/services/dns imports enjin/cmd/enjin: "},
		{"a service importing bench", listedPackage{ImportPath: "enjin/services/dns", Imports: []string{"enjin/bench"}},
			"enjin/services/dns imports enjin/bench: "},
		{"a ring importing bench", listedPackage{ImportPath: "enjin/rings/ring0", Imports: []string{"enjin/bench"}},
			"enjin/rings/ring0 imports enjin/bench: "},
		{"bench importing a ring", listedPackage{ImportPath: "enjin/bench", Imports: []string{"enjin/rings/ring0"}},
			"enjin/bench imports enjin/rings/ring0: layer bench may import only the layers services, contracts, supervisors, guest, bus, keys, schema, vocabulary"},
		{"a service importing test/harness", listedPackage{ImportPath: "enjin/services/dns", Imports: []string{"enjin/test/harness"}},
			"enjin/services/dns imports enjin/test/harness: "},
		{"a supervisor importing a service",
			listedPackage{ImportPath: "enjin/supervisors/process", Imports: []string{"enjin/services/dns"}},
			"enjin/supervisors/process imports enjin/services/dns: layer supervisors may import only the layers supervisors, bus, keys, vocabulary"},
		{"supervisors/sandbox, not yet written, importing a service",
			listedPackage{ImportPath: "enjin/supervisors/sandbox", Imports: []string{"enjin/services/apphost"}},
			"enjin/supervisors/sandbox imports enjin/services/apphost: "},
		{"a supervisor importing the app API's contract",
			listedPackage{ImportPath: "enjin/supervisors/libvirt", Imports: []string{"enjin/services/appapi"}},
			"enjin/supervisors/libvirt imports enjin/services/appapi: "},
		{"the app API's contract importing a service",
			listedPackage{ImportPath: "enjin/services/appapi", Imports: []string{"enjin/services/apphost"}},
			"enjin/services/appapi imports enjin/services/apphost: "},
		{"a supervisor's tests importing a service",
			listedPackage{ImportPath: "enjin/supervisors/process", XTestImports: []string{"enjin/supervisors/process", "enjin/services/dns"}},
			"enjin/supervisors/process's tests import enjin/services/dns: tests of layer supervisors may import only the layers supervisors, bus, keys, vocabulary, the package itself and enjin/test/harness"},
		{"keys' tests importing test/harness",
			listedPackage{ImportPath: "enjin/keys", TestImports: []string{"enjin/test/harness"}},
			"enjin/keys's tests import enjin/test/harness: tests of layer keys may import only the layers vocabulary, the package itself and nothing else"},
		{"a ring's tests importing another ring",
			listedPackage{ImportPath: "enjin/rings/ring1", XTestImports: []string{"enjin/rings/ring1", "enjin/rings/ring0"}},
			"enjin/rings/ring1's tests import enjin/rings/ring0: "},
		{"a service's tests importing a ring", listedPackage{ImportPath: "enjin/services/api", TestImports: []string{"enjin/rings/ring0"}},
			"enjin/services/api's tests import enjin/rings/ring0: "},
		{"bus's tests importing the store, which only bus/broker's may",
			listedPackage{ImportPath: "enjin/bus", XTestImports: []string{"enjin/services/inventory"}},
			"enjin/bus's tests import enjin/services/inventory: "},
		{"a package in no layer", listedPackage{ImportPath: "enjin/store"},
			"enjin/store is in no layer: add it to one in layers"},
		{"ring 1 reaching the database driver",
			listedPackage{ImportPath: "enjin/rings/ring1", Deps: []string{"enjin/bus", "github.com/jackc/pgx/v5"}},
			"enjin/rings/ring1 depends on github.com/jackc/pgx/v5: "},

		// Allowed.
		{"a service importing a supervisor", listedPackage{ImportPath: "enjin/services/apphost", Imports: []string{"enjin/supervisors/process"}}, ""},
		{"a service importing another", listedPackage{ImportPath: "enjin/services/backup", Imports: []string{"enjin/services/postgres"}}, ""},
		{"services/vmhost importing guest", listedPackage{ImportPath: "enjin/services/vmhost", Imports: []string{"enjin/guest"}}, ""},
		{"a ring importing its own subpackage", listedPackage{ImportPath: "enjin/rings/ring0", Imports: []string{"enjin/rings/ring0/api"}}, ""},
		{"ring 0 reaching the database driver", listedPackage{ImportPath: "enjin/rings/ring0", Deps: []string{"github.com/jackc/pgx/v5"}}, ""},
		{"supervisors/sandbox, not yet written, importing process",
			listedPackage{ImportPath: "enjin/supervisors/sandbox", Imports: []string{"enjin/supervisors/process", "enjin"}}, ""},
		{"a supervisor's tests importing test/harness",
			listedPackage{ImportPath: "enjin/supervisors/netseg", XTestImports: []string{"enjin/supervisors/netseg", "enjin/test/harness"}}, ""},
		{"bus/broker's tests importing the store",
			listedPackage{ImportPath: "enjin/bus/broker", XTestImports: []string{"enjin/bus/broker", "enjin/services/inventory"}}, ""},
		{"cmd importing bench", listedPackage{ImportPath: "enjin/cmd/enjin", Imports: []string{"enjin/bench", "enjin/rings/ring0"}}, ""},
		{"bench importing services and supervisors",
			listedPackage{ImportPath: "enjin/bench", Imports: []string{"enjin/services/router", "enjin/supervisors/netseg", "enjin/bus/broker"}}, ""},
		{"test/harness importing services and supervisors",
			listedPackage{ImportPath: "enjin/test/harness", Imports: []string{"enjin/services/postgres", "enjin/supervisors/libvirt"}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := checkImports(layers, testEdges, []listedPackage{c.pkg})
			switch {
			case c.want == "" && len(got) > 0:
				t.Errorf("allowed edge reported:\n%s", strings.Join(got, "\n"))
			case c.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], c.want)):
				t.Errorf("got %q want one report starting %q", got, c.want)
			}
		})
	}
	t.Run("the table's own mistakes", func(t *testing.T) {
		bad := []layer{
			{name: "a", imports: []string{"c"}, pkgs: []string{"enjin/x"}},
			{name: "b", pkgs: []string{"enjin/x"}},
			{name: "b"},
		}
		want := []string{"enjin/x is in layers a and b", "layer b is defined twice",
			"layer a may import layer c, which is not defined"}
		if got := checkLayers(bad); !slices.Equal(got, want) {
			t.Errorf("got %q want %q", got, want)
		}
	})
}
