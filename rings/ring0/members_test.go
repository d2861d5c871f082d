package ring0

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"enjin/services/images"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// Two members on one store: each lists both (GET /v1/members), takes the other's admin token,
// and an image uploaded through one is copied to the other — the very bytes — so either can
// hand it to a ring 1 node.
func TestMembersShareAdminsAndImages(t *testing.T) {
	pg := harness.StartPostgres(t)
	db := pg.CreateDatabase(t, "")
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startMember(t, dirA, db)
	harness.CopyKeys(t, dirA, dirB)
	b := startMember(t, dirB, db)
	token := func(r *Ring0) string {
		tok, err := os.ReadFile(r.AdminTokenFile())
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + strings.TrimSpace(string(tok))
	}
	call := func(r *Ring0, auth, method, path string, body io.Reader) (int, []byte) {
		req, _ := http.NewRequest(method, r.APIURL()+path, body)
		req.Header.Set("Authorization", auth)
		if body != nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}

	harness.Eventually(t, 10*time.Second, func() bool {
		code, body := call(b, token(a), "GET", "/v1/members", nil) // a's token, at b
		var ms struct{ Members []inventory.Ring0Member }
		return code == 200 && json.Unmarshal(body, &ms) == nil && len(ms.Members) == 2 &&
			ms.Members[0].API != "" && ms.Members[0].NATS != ""
	}, "b lists both members to a's admin")
	if code, _ := call(b, "Bearer not-a-members-token-at-all", "GET", "/v1/members", nil); code != http.StatusUnauthorized {
		t.Fatalf("a token no member has: %d, want 401", code)
	}

	raw := bytes.Repeat([]byte("enjin!"), 1<<16)
	code, body := call(a, token(a), "POST", "/v1/images?name=tiny&format=raw", bytes.NewReader(raw))
	if code != http.StatusCreated {
		t.Fatalf("upload through a: %d %s", code, body)
	}
	var im inventory.Image
	json.Unmarshal(body, &im)
	fa, err := a.images.Open(im.Digest, images.PartDisk)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(fa)
	fa.Close()
	harness.Eventually(t, 3*replicateEvery, func() bool {
		fb, err := b.images.Open(im.Digest, images.PartDisk)
		if err != nil {
			return false
		}
		defer fb.Close()
		got, _ := io.ReadAll(fb)
		return bytes.Equal(got, want)
	}, "b holds the image a took")
	t.Logf("image %s (%d bytes stored) copied from a to b", im.ID, len(want))
}
