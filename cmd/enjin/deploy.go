package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"enjin/services/appapi"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/services/apphost"
)

func deployCmd(g *globals) *cobra.Command {
	var tenant, app, node string
	var quiet bool
	c := &cobra.Command{
		Use:   "deploy TENANT/APP [DIR] | deploy [DIR] --tenant TENANT --name APP",
		Short: "pack DIR (a Procfile, an optional enjin.json) and deploy it as the app's next release",
		Long: `Pack DIR (default .) and deploy it as the app's next release. The new release must be
healthy before traffic moves to it; if it is not, the old one keeps serving and the command
fails with the reason (the instance's exit and its last log lines).

An app's first deploy places it on a ring 1 node hosting the tenant; the admin may name
the node (--node), which then hosts the tenant too. The app stays there.

Progress goes to stderr (-q silences it); the deployed release and its URL to stdout.`,
		Example: `  enjin apps deploy /tmp/hello --tenant acme --name hello
  enjin apps deploy acme/hello /tmp/hello
  cd /tmp/hello && enjin apps deploy acme/hello -q
  enjin apps deploy acme/db ./db --node ring1-b`,
		Args: argsBetween(0, 2, "TENANT/APP [DIR], or [DIR] with --tenant and --name"),
	}
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant (with --name; then the argument is DIR)")
	c.Flags().StringVar(&app, "name", "", "the app's name (with --tenant)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	c.Flags().StringVar(&node, "node", "", "the ring 1 node to place a new app on (the admin only)")
	c.RunE = func(c *cobra.Command, args []string) error {
		t, a, dir, err := deployTarget(args, tenant, app)
		if err != nil {
			return err
		}
		if node != "" && enjin.NodeID(node).Validate() != nil {
			return usagef("apps deploy: --node %q: want a node id", node)
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		progress := c.ErrOrStderr()
		if quiet {
			progress = io.Discard
		}
		d := deployment{cl: cl, tenant: t, app: a, node: enjin.NodeID(node), progress: progress, detail: c.ErrOrStderr()}
		rel, err := d.run(c.Context(), dir)
		if err != nil {
			return fmt.Errorf("deploy %s/%s: %w", t, a, err)
		}
		return printDeployed(c.OutOrStdout(), g.stateDir, t, a, rel)
	}
	return c
}

// deployTarget reads the app and directory from either form of the command line.
func deployTarget(args []string, tenant, app string) (enjin.TenantID, string, string, error) {
	dir := "."
	if tenant != "" || app != "" {
		if enjin.TenantID(tenant).Validate() != nil || !enjin.IsSlug(app) {
			return "", "", "", usagef("apps deploy: --tenant and --name go together, as slugs")
		}
		if len(args) > 1 {
			return "", "", "", usagef("apps deploy: with --tenant and --name, the one argument is DIR")
		}
		if len(args) == 1 {
			dir = args[0]
		}
		return enjin.TenantID(tenant), app, dir, nil
	}
	if len(args) == 0 {
		return "", "", "", usagef("apps deploy: want TENANT/APP [DIR], or [DIR] --tenant T --name N")
	}
	t, a, err := appRef(args[0])
	if len(args) == 2 {
		dir = args[1]
	}
	return t, a, dir, err
}

// deployment is one deploy of a directory to one app.
type deployment struct {
	cl       *client
	tenant   enjin.TenantID
	app      string
	node     enjin.NodeID // where to place a new app; "" lets ring 0 choose
	progress io.Writer    // the steps, unless -q
	detail   io.Writer    // why a release failed, even with -q
}

func (d *deployment) run(ctx context.Context, dir string) (appapi.Release, error) {
	if _, err := os.Stat(filepath.Join(dir, "Procfile")); err != nil {
		return appapi.Release{}, fmt.Errorf("%s has no Procfile", dir)
	}
	// A directory deployed before, unchanged: the node has its package, nothing is sent.
	digest, files, err := apphost.Scan(dir)
	if err != nil {
		return appapi.Release{}, err
	}
	rel, err, sent := d.send(ctx, "package="+digest, nil)
	if sent || !errors.Is(err, errNoPackage) {
		return rel, err
	}
	// Changed: only the files the app's releases do not have go whole.
	if have := d.haveFiles(ctx, files); len(have) > 0 {
		bundle, whole, err := apphost.PackDelta(dir, d.level(), files, func(d string) bool { return have[d] })
		if err != nil {
			return appapi.Release{}, err
		}
		fmt.Fprintf(d.progress, "packed %d files (%d changed), %s\n", len(files), whole, megabytes(len(bundle)))
		if rel, err, sent := d.send(ctx, "delta=1", bundle); sent || !errors.Is(err, errNoPackage) {
			return rel, err
		}
	}
	bundle, err := apphost.PackLevel(dir, d.level())
	if err == nil && len(bundle) > apphost.MaxBundle && d.level() == gzip.NoCompression {
		bundle, err = apphost.Pack(dir) // too large as it is: compressed, it may fit
	}
	if err != nil {
		return appapi.Release{}, err
	}
	fmt.Fprintf(d.progress, "packed %d files, %s\n", len(files), megabytes(len(bundle)))
	rel, err, _ = d.send(ctx, "", bundle)
	return rel, err
}

// level is how hard to compress a bundle: not at all for a ring 0 on this machine (the
// bundle crosses loopback only), else gzip's fastest.
func (d *deployment) level() int {
	if u, err := url.Parse(d.cl.base); err == nil {
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && ip.IsLoopback() || u.Hostname() == "localhost" {
			return gzip.NoCompression
		}
	}
	return gzip.BestSpeed
}

// haveFiles asks which of files' digests the app's releases have; none if it cannot tell
// (a new app, a node from before the question).
func (d *deployment) haveFiles(ctx context.Context, files []apphost.Entry) map[string]bool {
	var in appapi.FilesQuery
	seen := map[string]bool{}
	for _, f := range files {
		if !seen[f.Digest] {
			seen[f.Digest] = true
			in.Digests = append(in.Digests, f.Digest)
		}
	}
	var out appapi.Files
	if err := d.cl.do(ctx, "POST", appapi.OpFiles.Path(string(d.tenant), d.app), nil, in, &out); err != nil {
		return nil
	}
	have := map[string]bool{}
	for _, h := range out.Have {
		have[h] = seen[h]
	}
	return have
}

// errNoPackage is a node's answer that the app has no release of the package asked for.
var errNoPackage = errors.New("the app has no release of this package")

// send asks for the deploy: of the package named in query (bundle nil), or of bundle. sent
// says whether the node took it (the outcome is then the deploy's).
func (d *deployment) send(ctx context.Context, query string, bundle []byte) (appapi.Release, error, bool) {
	hdr := http.Header{"Content-Type": {"application/gzip"}, "Accept": {"application/x-ndjson"}}
	q := url.Values{}
	if d.node != "" {
		q.Set("node", string(d.node))
	}
	if query != "" {
		k, v, _ := strings.Cut(query, "=")
		q.Set(k, v)
	}
	path := appapi.OpDeploy.Path(string(d.tenant), d.app)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := d.cl.send(ctx, d.cl.stream, "POST", path, hdr, bytes.NewReader(bundle))
	if err != nil {
		// 404: the app has no release of it (or no release yet); 400 bad_query: a ring 0
		// from before package=; 422 on the bundle: a node from before it, which took the
		// empty body for one — whichever, upload.
		if ae := (*apiError)(nil); query != "" && errors.As(err, &ae) &&
			(ae.Status == http.StatusNotFound || ae.Code == "bad_query" || ae.Status == http.StatusUnprocessableEntity && ae.Field == "bundle") {
			return appapi.Release{}, errNoPackage, false
		}
		return appapi.Release{}, err, true
	}
	defer resp.Body.Close()
	w := &deployWatch{progress: d.progress, detail: d.detail, bundleBytes: len(bundle), uploaded: bundle == nil}
	if bundle == nil {
		fmt.Fprintf(d.progress, "unchanged since a release of %s: nothing uploaded\n", shortDigest(query[len("package="):]))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/x-ndjson" {
		rel, err := w.legacy(resp.Body) // a server from before the stream: 201 and the release
		return rel, err, true
	}
	rel, err := w.read(resp.Body)
	if ctx.Err() != nil {
		return rel, fmt.Errorf("interrupted; the release may still go live (see enjin apps releases %s/%s)", d.tenant, d.app), true
	}
	return rel, err, true
}

func megabytes(n int) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// printDeployed says which release is live and, with a local cloud, where to reach it.
func printDeployed(w io.Writer, stateDir string, t enjin.TenantID, a string, rel appapi.Release) error {
	fmt.Fprintf(w, "deployed %s/%s release %d (%s)\n", t, a, rel.Number, shortDigest(rel.Digest))
	if ep, err := readEndpoints(stateDir); err == nil && ep.Router != "" {
		host := fmt.Sprintf("%s.%s.%s", a, t, ep.AppsDomain)
		fmt.Fprintf(w, "url: http://%s/  (router %s: curl -H 'Host: %s' http://%s/)\n", host, ep.Router, host, ep.Router)
	}
	return nil
}

// legacy reads the plain JSON release an older server answers once the release is live.
func (w *deployWatch) legacy(body io.Reader) (appapi.Release, error) {
	var rel appapi.Release
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&rel); err != nil || rel.Digest == "" {
		return rel, fmt.Errorf("unreadable answer: %v", err)
	}
	fmt.Fprintf(w.progress, "uploaded %s\n", megabytes(w.bundleBytes))
	return rel, nil
}
