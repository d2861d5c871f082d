package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// maxAppList bounds what ring 0 reads of one node's list of a tenant's apps.
const maxAppList = 16 << 20

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
		name string
		raw  json.RawMessage
	}
	var apps []named
	for _, b := range all {
		u := b.Base + c.r.URL.EscapedPath()
		if c.r.URL.RawQuery != "" {
			u += "?" + c.r.URL.RawQuery
		}
		req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+b.Token)
		req.Header.Set(callerHeader, c.id.Caller())
		unavailable := &apiError{http.StatusBadGateway, "ring1_unavailable", fmt.Sprintf("ring 1 node %s, which runs some of this tenant's apps, did not answer", b.Node)}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return unavailable
		}
		var page struct {
			Apps []json.RawMessage `json:"apps"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, maxAppList)).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return unavailable
		}
		for _, raw := range page.Apps {
			var fields map[string]json.RawMessage
			if json.Unmarshal(raw, &fields) != nil || fields == nil {
				return unavailable
			}
			var name string
			json.Unmarshal(fields["name"], &name)
			fields["node"], _ = json.Marshal(b.Node) // where it runs: ring 0's to say
			raw, _ = json.Marshal(fields)
			apps = append(apps, named{name, raw})
		}
	}
	slices.SortStableFunc(apps, func(x, y named) int { return strings.Compare(x.name, y.name) })
	out := make([]json.RawMessage, len(apps))
	for i, x := range apps {
		out[i] = x.raw
	}
	a.reply(c.w, http.StatusOK, map[string]any{"apps": out})
	return nil
}
