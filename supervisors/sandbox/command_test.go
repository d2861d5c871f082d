package sandbox_test

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"

	"enjin/supervisors/sandbox"
)

func TestCommandRefuses(t *testing.T) {
	ok := sandbox.Spec{UID: 1000, GID: 1000, Root: "/r", Path: "/app/x"}
	for _, c := range []struct {
		name string
		edit func(*sandbox.Spec)
	}{
		{"root uid", func(sb *sandbox.Spec) { sb.UID = 0 }},
		{"root gid", func(sb *sandbox.Spec) { sb.GID = 0 }},
		{"relative root", func(sb *sandbox.Spec) { sb.Root = "r" }},
		{"no root", func(sb *sandbox.Spec) { sb.Root = "" }},
		{"relative path", func(sb *sandbox.Spec) { sb.Path = "x" }},
		{"bind on /", func(sb *sandbox.Spec) { sb.Binds = []sandbox.Bind{{Source: "/s", Target: "/"}} }},
		{"bind into /usr", func(sb *sandbox.Spec) { sb.Binds = []sandbox.Bind{{Source: "/s", Target: "/usr/local"}} }},
		{"bind on /proc", func(sb *sandbox.Spec) { sb.Binds = []sandbox.Bind{{Source: "/s", Target: "/proc"}} }},
		{"unclean target", func(sb *sandbox.Spec) { sb.Binds = []sandbox.Bind{{Source: "/s", Target: "/app/../etc"}} }},
		{"relative source", func(sb *sandbox.Spec) { sb.Binds = []sandbox.Bind{{Source: "s", Target: "/app"}} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb := ok
			c.edit(&sb)
			if _, err := sb.Command("/bin/true"); err == nil {
				t.Errorf("Command accepted %+v", sb)
			}
		})
	}
	if _, err := ok.Command("/bin/true"); err != nil {
		t.Errorf("control: %v", err)
	}
}

// TestCommandWritesLargeSpecs: Command returns, without a reader, for specs far larger
// than a pipe's default buffer (64 KiB), and the pipe holds all of them.
func TestCommandWritesLargeSpecs(t *testing.T) {
	for _, size := range []int{300 << 10, 2 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) { testLargeSpec(t, size) })
	}
}

func testLargeSpec(t *testing.T, size int) {
	sb := sandbox.Spec{UID: 1000, GID: 1000, Root: "/r", Path: "/app/x", Env: []string{"BIG=" + strings.Repeat("x", size)}}
	cmd, err := sb.Command("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cmd.Args, []string{"/bin/true", sandbox.HelperArg}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("args %q want %q", got, want)
	}
	if cmd.Env == nil || len(cmd.Env) != 0 {
		t.Errorf("env %q, want empty (not nil, which inherits)", cmd.Env)
	}
	b, err := io.ReadAll(cmd.ExtraFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	var got sandbox.Spec
	if err := json.Unmarshal(b, &got); err != nil || len(got.Env) != 1 || got.Env[0] != sb.Env[0] {
		t.Fatalf("spec read back: %d bytes, %v", len(b), err)
	}
}
