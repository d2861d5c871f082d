package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"enjin"
)

// maxAppList bounds what ring 0 reads of one node's list of a tenant's apps.
const maxAppList = 16 << 20

// hostReads is how ring 0 reads from the several hosts an answer gathers (a tenant's apps, a
// spread app's instances and logs): a host that went silent — cut off, its link down — fails
// the read within seconds, not after TCP's minutes of retries, however long a followed log
// then streams.
var hostReads = &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	ResponseHeaderTimeout: 10 * time.Second,
	IdleConnTimeout:       time.Minute,
}

// listApps lists the tenant's apps on every node running some, by name, each with its node.
// A node that does not answer fails the list (502): a list missing apps would read as apps
// gone.
func (a *API) listApps(c *call) error {
	all, err := a.ring0.AppsBackends(c.ctx, c.tenant())
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return invalid("no ring 1 node hosting %s runs apps", c.tenant())
	}
	type named struct {
		name   string
		fields map[string]json.RawMessage
	}
	var apps []named
	at := map[string]int{} // an app spread over hosts is listed once: where it lives
	for _, b := range all {
		var page struct {
			Apps []json.RawMessage `json:"apps"`
		}
		if err := a.fetchFrom(c, b, &page); err != nil {
			return unavailable(b)
		}
		for _, raw := range page.Apps {
			var fields map[string]json.RawMessage
			if json.Unmarshal(raw, &fields) != nil || fields == nil {
				return unavailable(b)
			}
			var name string
			json.Unmarshal(fields["name"], &name)
			var share struct{ Slot, Of int }
			json.Unmarshal(fields["share"], &share)
			fields["node"], _ = json.Marshal(b.Node) // where it runs: ring 0's to say
			fields["nodes"], _ = json.Marshal([]enjin.NodeID{b.Node})
			if i, dup := at[name]; dup {
				apps[i].fields = mergeApp(apps[i].fields, fields, share.Slot == 0)
				continue
			}
			at[name] = len(apps)
			apps = append(apps, named{name, fields})
		}
	}
	slices.SortStableFunc(apps, func(x, y named) int { return strings.Compare(x.name, y.name) })
	out := make([]json.RawMessage, len(apps))
	for i, x := range apps {
		delete(x.fields, "share")
		out[i], _ = json.Marshal(x.fields)
	}
	a.reply(c.w, http.StatusOK, map[string]any{"apps": out})
	return nil
}

// mergeApp is one app as two hosts list it (a and b, b the app's home if home): the home's
// fields, instances summed, the hosts listed.
func mergeApp(a, b map[string]json.RawMessage, home bool) map[string]json.RawMessage {
	var ia, ib map[string]int
	var na, nb []enjin.NodeID
	json.Unmarshal(a["instances"], &ia)
	json.Unmarshal(b["instances"], &ib)
	json.Unmarshal(a["nodes"], &na)
	json.Unmarshal(b["nodes"], &nb)
	out := a
	if home {
		out = b
	}
	if ia == nil {
		ia = map[string]int{}
	}
	for t, n := range ib {
		ia[t] += n
	}
	out["instances"], _ = json.Marshal(ia)
	out["nodes"], _ = json.Marshal(append(na, nb...))
	return out
}

// unavailable is ring 1 node b failing a read that needs every node's answer.
func unavailable(b AppsBackend) error {
	return &apiError{http.StatusBadGateway, "ring1_unavailable", fmt.Sprintf("ring 1 node %s, which runs some of this tenant's apps, did not answer", b.Node)}
}

// errNotThere is an app API answering that it has not got what was asked.
var errNotThere = errors.New("not there")

// fetchFrom reads, as the caller, the request's path (and query) from app API b into out.
func (a *API) fetchFrom(c *call, b AppsBackend, out any) error {
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second) // the body too
	defer cancel()
	resp, err := a.openFrom(ctx, c, b, c.r.URL.RawQuery)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if json.NewDecoder(io.LimitReader(resp.Body, maxAppList)).Decode(out) != nil {
		return unavailable(b)
	}
	return nil
}

// openFrom asks app API b, as the caller (within ctx), for the request's path with query; an answer but
// 200 is an error (errNotThere for a 404).
func (a *API) openFrom(ctx context.Context, c *call, b AppsBackend, query string) (*http.Response, error) {
	u := b.Base + c.r.URL.EscapedPath()
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.Token)
	req.Header.Set(callerHeader, c.id.Caller())
	resp, err := (&http.Client{Transport: b.over(hostReads)}).Do(req)
	if err != nil {
		return nil, unavailable(b)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, errNotThere
		}
		return nil, unavailable(b)
	}
	return resp, nil
}

// appHosts are the app APIs of the hosts running tenant t's app: its home, then its
// replicas (none for an app on one host).
func (a *API) appHosts(c *call, t enjin.TenantID, app string) ([]AppsBackend, error) {
	home, err := a.ring0.AppsBackend(c.ctx, t, app, false, "")
	if err != nil {
		return nil, err
	}
	replicas, err := a.store.AppReplicas(c.ctx, t, app)
	if err != nil || len(replicas) == 0 {
		return []AppsBackend{home}, err
	}
	all, err := a.ring0.AppsBackends(c.ctx, t)
	if err != nil {
		return nil, err
	}
	hosts := []AppsBackend{home}
	for _, b := range all {
		if slices.Contains(replicas, b.Node) {
			hosts = append(hosts, b)
		}
	}
	return hosts, nil
}

// appInstances lists an app's instances: at its home, and on the hosts running a share of
// them (replicas), each with the host it runs on.
func (a *API) appInstances(c *call) error {
	t, app := c.tenant(), c.path["app"]
	hosts, err := a.appHosts(c, t, app)
	if err != nil {
		return err
	}
	if len(hosts) == 1 {
		return a.forwardTo(c, hosts[0], nil)
	}
	var out []map[string]any
	err = eachHost(t, app, hosts, func(b AppsBackend) error {
		var page struct {
			Instances []map[string]any `json:"instances"`
		}
		err := a.fetchFrom(c, b, &page)
		for _, in := range page.Instances {
			in["host"] = b.Node
			out = append(out, in)
		}
		return err
	})
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, map[string]any{"instances": nonNil(out)})
	return nil
}

// eachHost calls read for each of hosts running tenant t's app (its home first): a replica
// that has not got it (yet: errNotThere) is skipped, a home that has not is the caller's 404.
func eachHost(t enjin.TenantID, app string, hosts []AppsBackend, read func(AppsBackend) error) error {
	for i, b := range hosts {
		err := read(b)
		switch {
		case i > 0 && errors.Is(err, errNotThere):
		case errors.Is(err, errNotThere):
			return notFound("no app %s/%s", t, app)
		case err != nil:
			return err
		}
	}
	return nil
}
