package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// usageError is a mistake in how the command was called: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// exitCode is the exit status for what a command returned.
func exitCode(err error) int {
	var u usageError
	var j jobExit
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	case errors.As(err, &j):
		return int(j)
	default:
		return 1
	}
}

// oneLine keeps an error on the one line it is promised to take.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}

// name is how errors call a command: its path without the leading "enjin ".
func name(c *cobra.Command) string {
	if !c.HasParent() {
		return c.Name()
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}

// flagError makes every flag parsing error a usage error.
func flagError(c *cobra.Command, err error) error {
	return usageError{fmt.Errorf("%s: %w (try %s --help)", name(c), err, c.CommandPath())}
}

// argsBetween accepts min to max positional arguments (max < 0: no limit); want says which.
func argsBetween(min, max int, want string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return usagef("%s: want %s, got %s (try %s --help)", name(c), want, countArgs(args), c.CommandPath())
		}
		return nil
	}
}

func countArgs(args []string) string {
	switch len(args) {
	case 0:
		return "no arguments"
	case 1:
		return fmt.Sprintf("%q", args[0])
	default:
		return fmt.Sprintf("%d arguments", len(args))
	}
}

// verbArgs refuses an unknown verb of a command that only holds others.
func verbArgs(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usagef("%s (try %s --help)", msg, c.CommandPath())
}

// verbsOnly walks the tree: a command that only holds others prints its help when called bare
// and refuses an unknown verb with exit status 2 (cobra would print the help for both, exit 0),
// and every argument error, cobra's own validators' too, is a usage error.
func verbsOnly(c *cobra.Command) {
	for _, sub := range c.Commands() {
		verbsOnly(sub)
	}
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = verbArgs
		c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	if validate := c.Args; validate != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			err := validate(c, args)
			var u usageError
			if err != nil && !errors.As(err, &u) {
				return usageError{fmt.Errorf("%s: %w", name(c), err)}
			}
			return err
		}
	}
}

// strictHelp makes `enjin help TOPIC` refuse an unknown topic (exit 2) where cobra's help
// command would print the root's help.
func strictHelp(root *cobra.Command) {
	for _, h := range root.Commands() {
		if h.Name() != "help" || h.Run == nil {
			continue
		}
		show := h.Run
		h.Run = nil
		h.RunE = func(c *cobra.Command, args []string) error {
			if _, rest, err := c.Root().Find(args); err != nil || len(rest) > 0 {
				return usagef("help: no command %q (try enjin --help)", strings.Join(args, " "))
			}
			show(c, args)
			return nil
		}
	}
}
