package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"enjin"
)

// maxLogLine bounds one log line as a host sends it.
const maxLogLine = 1 << 20

// hostLine is one log line of an app spread over hosts, with the host that sent it.
type hostLine struct {
	at     time.Time
	host   enjin.NodeID
	fields map[string]json.RawMessage
}

// appLogs answers an app's log lines: its home's, forwarded; or, for an app spread over
// hosts, every host's: the last lines of them all, oldest first, each naming its host, then
// (follow=1) every new line as a host sends it.
func (a *API) appLogs(c *call) error {
	t, app := c.tenant(), c.path["app"]
	hosts, err := a.appHosts(c, t, app)
	if err != nil {
		return err
	}
	if len(hosts) == 1 {
		return a.forwardTo(c, hosts[0], nil)
	}
	n, err := c.q.intParam("lines", 1, 10000, 100)
	if err != nil {
		return err
	}
	follow, err := c.q.intParam("follow", 0, 1, 0)
	if err != nil {
		return err
	}
	var past []hostLine
	last := map[enjin.NodeID]time.Time{}
	err = eachHost(t, app, hosts, func(b AppsBackend) error {
		lines, err := a.logsOf(c, b, n)
		if len(lines) > 0 {
			last[b.Node] = lines[len(lines)-1].at
		}
		past = append(past, lines...)
		return err
	})
	if err != nil {
		return err
	}
	slices.SortStableFunc(past, func(x, y hostLine) int { return x.at.Compare(y.at) })
	past = past[max(0, len(past)-n):]
	w, done := streaming(c.w, c.r)
	defer done()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, l := range past {
		enc.Encode(l.fields)
	}
	rc := http.NewResponseController(w)
	rc.Flush()
	if follow == 1 {
		a.followLogs(c, hosts, last, w, rc)
	}
	return nil
}

// logsOf reads host b's last n lines of the request's app.
func (a *API) logsOf(c *call, b AppsBackend, n int) ([]hostLine, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second) // the past lines: the body too
	defer cancel()
	resp, err := a.openFrom(ctx, c, b, url.Values{"lines": {strconv.Itoa(n)}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []hostLine
	err = eachLine(resp, b.Node, func(l hostLine) bool { out = append(out, l); return true })
	return out, err
}

// eachLine calls fn with every log line of resp, host's, until fn says no more.
func eachLine(resp *http.Response, host enjin.NodeID, fn func(hostLine) bool) error {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, maxLogLine)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue // a keep-alive
		}
		l := hostLine{host: host}
		var head struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal(sc.Bytes(), &l.fields) != nil || json.Unmarshal(sc.Bytes(), &head) != nil {
			return errors.New("api: a log line that is not JSON")
		}
		l.at = head.Time
		l.fields["host"], _ = json.Marshal(host)
		if !fn(l) {
			return nil
		}
	}
	return sc.Err()
}

// followLogs sends, until the caller leaves or every host's stream ends, each new line of
// the hosts' (those after last, by host), as they come.
func (a *API) followLogs(c *call, hosts []AppsBackend, last map[enjin.NodeID]time.Time, w io.Writer, rc *http.ResponseController) {
	enc := json.NewEncoder(w)
	lines := make(chan hostLine)
	ended := make(chan struct{}, len(hosts))
	for _, b := range hosts {
		go func() {
			defer func() { ended <- struct{}{} }()
			resp, err := a.openFrom(c.ctx, c, b, "lines=1&follow=1")
			if err != nil {
				return
			}
			defer resp.Body.Close()
			eachLine(resp, b.Node, func(l hostLine) bool {
				if !l.at.After(last[b.Node]) {
					return true // sent already
				}
				select {
				case lines <- l:
					return true
				case <-c.ctx.Done():
					return false
				}
			})
		}()
	}
	tick := time.NewTicker(15 * time.Second) // keep idle connections alive through proxies
	defer tick.Stop()
	for open := len(hosts); open > 0; {
		select {
		case <-c.ctx.Done():
			return
		case <-ended:
			open--
			continue
		case l := <-lines:
			enc.Encode(l.fields)
		case <-tick.C:
			w.Write([]byte("\n"))
		}
		rc.Flush()
	}
}
