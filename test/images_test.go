package test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"enjin/test/harness"
)

// TestImagesEndToEnd runs `enjin ring0` and drives its image store with the CLI: a raw image
// is stored as a standalone qcow2 in <state>/images, which only root may enter; ring 1's way
// to it (the content, by digest) gives back what was uploaded; every hostile image is
// refused in one line naming why, with no canary opened; rm removes the file.
func TestImagesEndToEnd(t *testing.T) {
	r := newRing0(t, time.Second)
	enjin := func(args ...string) (string, string, int) {
		cmd := exec.CommandContext(t.Context(), harness.Binary(t), append(args, "--api", r.api())...)
		cmd.Env = append(os.Environ(), "ENJIN_TOKEN="+r.token)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}

	disk := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{9}).Read(disk[:2<<20])
	raw := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(raw, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := enjin("images", "upload", raw, "--name", "debian", "--format", "raw")
	if code != 0 || !strings.HasPrefix(out, "stored image debian: ") || !strings.Contains(errOut, "uploaded 8.4 MB; ring 0 is checking it") {
		t.Fatalf("upload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, _, code = enjin("images", "show", "debian", "-o", "json")
	var im struct {
		ID, Digest, Format string
		VirtualSize        int64 `json:"virtual_size"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &im) != nil || im.Format != "qcow2" || im.VirtualSize != 8<<20 {
		t.Fatalf("show: exit %d, %s", code, out)
	}
	dir := filepath.Join(r.state, "images")
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, im.Digest+".qcow2")); err != nil {
		t.Fatalf("the stored image: %v", err)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "GET", r.api()+"/v1/images/"+im.ID+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(t.TempDir(), "got.qcow2")
	f, _ := os.Create(got)
	io.Copy(f, resp.Body)
	f.Close()
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"`+im.Digest+`"` {
		t.Fatalf("content: %d %v", resp.StatusCode, resp.Header)
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, got).CombinedOutput(); err != nil {
		t.Fatalf("the content ring 1 would fetch is not what was uploaded: %v\n%s", err, out)
	}

	for _, h := range harness.HostileImages(t) {
		_, errOut, code := enjin("images", "upload", "-q", h.Path, "--name", "evil", "--format", h.Format)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, h.Reason) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and one line naming %q", h.Name, code, errOut, h.Reason)
		}
		if h.Canary != nil && h.Canary.Opened() {
			t.Errorf("%s: %s was opened", h.Name, h.Canary.Path)
		}
	}

	if out, errOut, code := enjin("images", "rm", "debian"); code != 0 || !strings.HasPrefix(out, "deleted image debian") {
		t.Fatalf("rm: exit %d, %q %q", code, out, errOut)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "staging" {
		t.Fatalf("%s after rm holds %v; want only the empty staging directory", dir, ents)
	}
	if out, _, code := enjin("images", "ls"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("ls after rm: exit %d, %q; want the header only", code, out)
	}
}
