package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJoinToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "join.token")
	os.WriteFile(file, []byte("tok-from-file\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tc := range []struct {
		join, file, stdin string
		want              string // "" for an error
	}{
		{"-", "", "tok-from-stdin\n", "tok-from-stdin"},
		{"-", "", "  tok-no-newline  ", "tok-no-newline"},
		{"-", "", "first\nsecond\n", "first"},
		{"-", "", "", ""},
		{"-", "", "\n", ""},
		{"", file, "", "tok-from-file"},
		{"", empty, "", ""},
		{"", filepath.Join(t.TempDir(), "none"), "", ""},
		{"-", "", `{"token":"tok-in-json","expires_at":"2026-12-02T00:00:00Z"}`, "tok-in-json"},
		{"-", "", `{"expires_at":"x"}`, ""},
		{"-", "", `{"token":`, ""},
	} {
		got, err := joinToken(tc.join, tc.file, strings.NewReader(tc.stdin))
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("joinToken(%q, %q, %q) = %q, %v; want %q", tc.join, tc.file, tc.stdin, got, err, tc.want)
		}
	}
}

func TestJoinRefusesTokenInArgv(t *testing.T) {
	_, errOut, code := enjinIn(t, "", "ring1", "--join", "abc", "--ring0", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "--join-file") || !strings.Contains(errOut, "--join -") || strings.Contains(errOut, "abc") {
		t.Fatalf("exit %d, stderr %q; want a usage error naming both ways, not echoing the token", code, errOut)
	}
}
