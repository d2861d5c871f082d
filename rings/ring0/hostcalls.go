package ring0

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"enjin/services/api"
)

// Ring 0's own calls to a ring 1 host's app API (the bearer it gave the host), for what it
// asks itself: the apps a host runs, exports, imports, retirements.

// hostError is a host's app API refusing a request.
type hostError struct {
	status int
	body   string
}

func (e *hostError) Error() string { return fmt.Sprintf("app api: %d %s", e.status, e.body) }

// hostDo sends a request to host h's app API as ring 0 (the admin), and returns the answer
// if it is a success.
func (r *Ring0) hostDo(ctx context.Context, h api.AppsBackend, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.Base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.Token)
	req.Header.Set("Enjin-Caller", "admin")
	resp, err := h.Client().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil, &hostError{resp.StatusCode, string(bytes.TrimSpace(b))}
	}
	return resp, nil
}

// hostJSON is hostDo, with the answer decoded into out (if not nil) within hostTimeout — or,
// for an import, the health timeout and some, and for a destroy, the instances' grace.
func (r *Ring0) hostJSON(ctx context.Context, h api.AppsBackend, method, path string, body io.Reader, out any) error {
	d := hostTimeout
	if method != "GET" {
		d = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	resp, err := r.hostDo(ctx, h, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out != nil {
		return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
