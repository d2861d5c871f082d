package apphost

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"

	"enjin"
)

// ErrExists is an import of an app this host has already.
var ErrExists = errors.New("exists")

// Recipe is what it takes to run an app on another host as it runs here: its live release
// and the environment and scale that release runs with. The release's package travels beside
// it (see Export). The app's HOME does not: a host that is gone cannot be read.
type Recipe struct {
	Release int               `json:"release"`
	Digest  string            `json:"digest"`
	Env     map[string]string `json:"env"`
	Scale   map[string]int    `json:"scale"`
}

// Running is an app with a live release on this host, as ring 0 compares it with what it has
// kept: its scale, not its environment (a change of which makes a new release); how many
// instances of each type it runs in all (Instances: the manifest's counts, scale applied)
// and which of them here (Share); for a copy of an app that lives on another host, the
// release there it runs (From).
type Running struct {
	Tenant    enjin.TenantID `json:"tenant"`
	App       string         `json:"app"`
	Release   int            `json:"release"`
	Digest    string         `json:"digest"`
	Scale     map[string]int `json:"scale"`
	Instances map[string]int `json:"instances"`
	Share     Share          `json:"share"`
	From      int            `json:"from,omitempty"`
	// OneHost: its instances stay on its home host — it said so (enjin.json "spread":
	// false), or it joins tenant networks (spreading one is not tested yet).
	OneHost bool `json:"one_host,omitempty"`
}

// Running lists every app that has a live release here, by tenant and name.
func (h *Host) Running() []Running {
	apps := h.allApps()
	var out []Running
	for _, a := range apps {
		a.mu.Lock()
		r, ok := a.release(a.current)
		run := Running{Tenant: enjin.TenantID(a.tenant), App: a.name, Release: r.Number, Digest: r.Digest, Scale: copyMap(a.scale),
			Share: a.share, From: a.from}
		a.mu.Unlock()
		if ok {
			run.Instances, _ = Manifest(r.Manifest).counts(run.Scale, h.cfg.Policy)
			run.OneHost = r.Manifest.OneHost || len(r.Manifest.Networks) > 0
			out = append(out, run)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Tenant < out[j].Tenant || out[i].Tenant == out[j].Tenant && out[i].App < out[j].App
	})
	return out
}

// Tar entries of an exported app.
const (
	recipeEntry  = "recipe.json"
	packageEntry = "package.tar.gz"
)

// Export writes the app's recipe to w as a tar: recipe.json, then — unless its live release's
// package is have — package.tar.gz, the bundle it was made of (or, for a release made from a
// delta, which keeps no package, its files packed anew). An app with no live release is
// ErrNotFound.
func (h *Host) Export(w io.Writer, tenant enjin.TenantID, name, have string) error {
	a, err := h.existing(tenant, name)
	if err != nil {
		return err
	}
	a.deploy.Lock() // no release pruned, no package deleted, under the export's feet
	defer a.deploy.Unlock()
	a.mu.Lock()
	r, ok := a.release(a.current)
	rec := Recipe{Release: r.Number, Digest: r.Digest, Env: copyMap(a.env), Scale: copyMap(a.scale)}
	a.mu.Unlock()
	if !ok {
		return errNotLive(a)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var pkg io.Reader
	var size int64
	if have != r.Digest {
		if f, err := os.Open(h.packagePath(r.Digest)); err == nil {
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			pkg, size = f, st.Size()
		} else {
			packed, err := Pack(a.releaseDir(r.Number))
			if err != nil {
				return fmt.Errorf("apphost: pack release %d of %s/%s: %w", r.Number, tenant, name, err)
			}
			pkg, size = bytes.NewReader(packed), int64(len(packed))
		}
	}
	return WriteExport(w, b, pkg, size)
}

// WriteExport writes an exported app to w: recipe (Recipe as JSON), then the package's size
// bytes from pkg, unless pkg is nil — what ReadExport reads and Import takes.
func WriteExport(w io.Writer, recipe []byte, pkg io.Reader, size int64) error {
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, recipeEntry, bytes.NewReader(recipe), int64(len(recipe))); err != nil {
		return err
	}
	if pkg != nil {
		if err := writeEntry(tw, packageEntry, pkg, size); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, name string, r io.Reader, size int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := io.Copy(tw, r)
	return err
}

// ReadExport reads what Export wrote: the recipe, and the package (nil if it was left out).
// The package is read whole: a package over maxPackage bytes is ErrTooLarge.
func ReadExport(r io.Reader, maxPackage int64) (Recipe, []byte, error) {
	var rec Recipe
	var pkg []byte
	tr := tar.NewReader(r)
	for i := 0; ; i++ {
		hd, err := tr.Next()
		if err == io.EOF && i > 0 {
			return rec, pkg, nil
		}
		if err != nil {
			return rec, nil, &FieldError{Field: "export", Msg: "not an exported app: " + err.Error()}
		}
		switch {
		case i == 0 && hd.Name == recipeEntry:
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&rec); err != nil {
				return rec, nil, &FieldError{Field: "export." + recipeEntry, Msg: err.Error()}
			}
		case i == 1 && hd.Name == packageEntry && hd.Size > maxPackage:
			return rec, nil, fmt.Errorf("apphost: a package of %d bytes, over %d: %w", hd.Size, maxPackage, ErrTooLarge)
		case i == 1 && hd.Name == packageEntry:
			if pkg, err = io.ReadAll(io.LimitReader(tr, maxPackage)); err != nil {
				return rec, nil, err
			}
		default:
			return rec, nil, &FieldError{Field: "export", Msg: fmt.Sprintf("unexpected entry %.80q", hd.Name)}
		}
	}
}

// Import makes the app, which this host must not have, run rec's release — the package pkg —
// with rec's environment and scale, share s of its instances: an app re-placed here from a
// host that went down, or a copy of an app spread over several hosts. Its first release here
// is numbered 1. An app this host has already is ErrExists, so an import asked for twice
// runs once.
func (h *Host) Import(ctx context.Context, tenant enjin.TenantID, name string, rec Recipe, pkg io.Reader, s Share, progress Progress) (Release, error) {
	if err := CheckEnv(rec.Env); err != nil {
		return Release{}, err
	}
	if err := checkShare(s); err != nil {
		return Release{}, err
	}
	a, err := h.appFor(tenant, name)
	if err != nil {
		return Release{}, err
	}
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	has := len(a.releases) > 0
	a.mu.Unlock()
	if has {
		return Release{}, fmt.Errorf("apphost: %s/%s runs here already: %w", tenant, name, ErrExists)
	}
	h.pkgs.RLock()
	digest, size, err := h.storePackage(pkg)
	if err != nil {
		h.pkgs.RUnlock()
		h.forgetIfEmpty(a)
		return Release{}, err
	}
	// The environment and scale go in before the release is made: its instances start with them.
	a.mu.Lock()
	a.env, a.scale, a.share, a.from = copyMap(rec.Env), map[string]int{}, s, rec.Release
	a.mu.Unlock()
	r, files, err := a.newRelease(digest)
	h.pkgs.RUnlock()
	if err == nil {
		scale := onlyTypes(rec.Scale, r.Manifest)
		if err = checkInstances(scale, r.Manifest.Procfile, "scale", h.cfg.Policy); err == nil {
			a.mu.Lock()
			a.scale = scale
			err = a.save()
			a.mu.Unlock()
		}
	}
	if err != nil {
		a.mu.Lock()
		a.releases = slices.DeleteFunc(a.releases, func(x Release) bool { return x.Number == r.Number })
		a.mu.Unlock()
		os.RemoveAll(a.releaseDir(r.Number))
		h.forgetIfEmpty(a)
		return Release{}, err
	}
	rel, err := a.goLive(ctx, r, files, size, progress)
	if err != nil {
		a.mu.Lock()
		live := a.current > 0
		a.mu.Unlock()
		if !live { // nothing of it runs: let ring 0 try again, here or elsewhere
			a.mu.Lock()
			a.releases = nil
			a.mu.Unlock()
			os.RemoveAll(a.releaseDir(r.Number))
			h.forgetIfEmpty(a)
		}
	}
	return rel, err
}

// serveExport writes the app's recipe and package as a tar (Export).
func (h *Host) serveExport(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
	w.Header().Set("Content-Type", "application/x-tar")
	cw := &counted{w: w}
	if err := h.Export(cw, t, a, r.URL.Query().Get("have")); err != nil {
		if cw.n == 0 {
			return 0, nil, err // nothing sent yet: an ordinary error answer
		}
		h.log.Warn("export cut short", "tenant", t, "app", a, "err", err)
		panic(http.ErrAbortHandler) // the answer has begun: the client sees it cut, not whole
	}
	return 0, nil, errDone
}

// serveImport runs an exported app here (Import), or, with follow=1, makes a new release of
// the copy here (Follow).
func (h *Host) serveImport(w http.ResponseWriter, r *http.Request, t enjin.TenantID, a string) (int, any, error) {
	rec, pkg, err := ReadExport(http.MaxBytesReader(w, r.Body, MaxBundle+2<<20), MaxBundle)
	if err != nil {
		return 0, nil, err
	}
	if pkg == nil {
		return 400, nil, &FieldError{Field: "export", Msg: "no package.tar.gz"}
	}
	s, err := shareOf(r)
	if err != nil {
		return 0, nil, err
	}
	if r.URL.Query().Get("follow") == "1" {
		rel, err := h.Follow(r.Context(), t, a, rec, bytes.NewReader(pkg), nil)
		return 200, rel, err
	}
	rel, err := h.Import(r.Context(), t, a, rec, bytes.NewReader(pkg), s, nil)
	return 201, rel, err
}

// counted is a writer that counts what went through it.
type counted struct {
	w io.Writer
	n int64
}

func (c *counted) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// shareOf is the share an import's query names (slot, of); none is every instance.
func shareOf(r *http.Request) (Share, error) {
	var s Share
	for _, f := range []struct {
		name string
		to   *int
	}{{"slot", &s.Slot}, {"of", &s.Of}} {
		if v := r.URL.Query().Get(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return s, &FieldError{Field: f.name, Msg: fmt.Sprintf("%.20q is no number", v)}
			}
			*f.to = n
		}
	}
	return s, checkShare(s)
}
