package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// format is the -o flag of the read verbs: table (the default) or json. Anything else is
// refused while the flags are parsed, which makes it a usage error.
type format string

func (f *format) String() string { return string(*f) }
func (f *format) Type() string   { return "table|json" }

func (f *format) Set(s string) error {
	if s != "table" && s != "json" {
		return errors.New("want table or json")
	}
	*f = format(s)
	return nil
}

// outputFlag registers -o on c.
func outputFlag(c *cobra.Command) *format {
	f := format("table")
	c.Flags().VarP(&f, "output", "o", "output format: table or json")
	c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return &f
}

func (f *format) json() bool { return *f == "json" }

// newTable starts an aligned table with its header; the caller writes tab-separated rows and
// flushes it.
func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	io.WriteString(tw, header+"\n")
	return tw
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeRaw prints a JSON answer as the server sent it, indented.
func writeRaw(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}
