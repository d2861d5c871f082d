package api_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"enjin/services/api"
	"enjin/services/inventory"
)

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		ok            bool
	}{
		{"good", adminToken + "\n", 0o600, true},
		{"owner read-only", adminToken, 0o400, true},
		{"group readable", adminToken, 0o640, false},
		{"world readable", adminToken, 0o604, false},
		{"too short", "short", 0o600, false},
		{"spaces inside", "a token with spaces in it", 0o600, false},
		{"empty", "", 0o600, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := api.AdminTokenFile(p)
			if (err == nil) != tc.ok {
				t.Fatalf("got err %v want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := api.AdminTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := api.AdminTokenFile(dir); err == nil {
		t.Error("directory accepted")
	}
}

func TestHtpasswdFile(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(h)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		admins        []string
		ok            bool
	}{
		{"good", "# comment\n\nalice:" + hash + "\nbob:" + strings.Replace(hash, "$2a$", "$2b$", 1) + "\n", []string{"alice"}, true},
		{"no admins", "alice:" + hash, nil, true},
		{"admin not listed", "alice:" + hash, []string{"carol"}, false},
		{"md5", "alice:$apr1$abc$def", nil, false},
		{"plain", "alice:secret", nil, false},
		{"sha", "alice:{SHA}abc=", nil, false},
		{"broken bcrypt", "alice:$2y$10$short", nil, false},
		{"no colon", "alice", nil, false},
		{"no user", ":" + hash, nil, false},
		{"twice", "alice:" + hash + "\nalice:" + hash, nil, false},
		{"empty", "# nobody\n", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := api.HtpasswdFile(p, tc.admins)
			if (err == nil) != tc.ok {
				t.Fatalf("got err %v want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestCheckers(t *testing.T) {
	cs := checkers(t)
	for _, tc := range []struct {
		auth      string
		name      string // "" means not recognised by any checker
		admin, ok bool
	}{
		{asAdmin, "admin", true, true},
		{"BEARER  " + adminToken + " ", "admin", true, true},
		{asAlice, "alice", true, true},
		{asAlice, "alice", true, true}, // from the cache this time
		{asBob, "bob", false, true},
		{asWrong, "", false, false},
		{asBadPw, "", false, false},
		{asNobody, "", false, false},
		{"Basic Ym9i", "", false, false}, // "bob" without a password
		{"Token xyz", "", false, true},   // nobody's scheme: not an error, just not recognised
	} {
		r := httptest.NewRequest("GET", "/v1/nodes", nil)
		r.Header.Set("Authorization", tc.auth)
		var id api.Identity
		var seen, failed bool
		for _, c := range cs {
			got, ok, err := c.Check(r)
			if err != nil {
				failed = true
				break
			}
			if ok {
				id, seen = got, true
				break
			}
		}
		switch {
		case tc.name != "" && (!seen || id.Name != tc.name || id.Admin != tc.admin):
			t.Errorf("%q: got %+v (recognised %v) want %s admin=%v", tc.auth, id, seen, tc.name, tc.admin)
		case tc.name == "" && seen:
			t.Errorf("%q: accepted as %+v", tc.auth, id)
		case tc.name == "" && failed == tc.ok:
			t.Errorf("%q: refused=%v want refused=%v", tc.auth, failed, !tc.ok)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := api.New(api.Config{}); err == nil || !strings.Contains(err.Error(), "store") ||
		!strings.Contains(err.Error(), "ring 0") || !strings.Contains(err.Error(), "checkers") {
		t.Errorf("empty config: %v; want every problem reported", err)
	}
	if _, err := api.New(api.Config{Store: &inventory.Store{}, Ring0: &testRing0{}, Checkers: checkers(t), MaxBody: -1}); err == nil {
		t.Error("negative body limit accepted")
	}
}
