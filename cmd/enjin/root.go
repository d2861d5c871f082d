package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"
)

// DefaultStateDir is where enjin keeps its state unless told otherwise.
const DefaultStateDir = "./var/enjin"

// globals are the root's persistent flags, accepted by every command.
type globals struct {
	stateDir  string // absolute once a command runs (resolve)
	api       string // "" means $ENJIN_API, else endpoints.json
	tokenFile string // "" means $ENJIN_TOKEN, else the admin token of endpoints.json
	caFile    string // "" means $ENJIN_CA, else endpoints.json's
}

// resolve makes the state dir absolute, once, before any command runs, so a path handed to a
// child process that runs in another directory still names the same place.
func (g *globals) resolve() error {
	abs, err := filepath.Abs(g.stateDir)
	if err != nil {
		return fmt.Errorf("--state-dir %s: %w", g.stateDir, err)
	}
	g.stateDir = abs
	return nil
}

// run runs one command line and returns its exit status; an error is one line on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(stderr, "enjin: internal error:", oneLine(fmt.Sprint(r)))
			code = 1
		}
	}()
	root := newRoot(&globals{}, stdin, stdout, stderr)
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "enjin:", oneLine(err.Error()))
	}
	return exitCode(err)
}

func newRoot(g *globals, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "enjin",
		Short: "a cloud you can run at any altitude",
		Long: `enjin runs a ring-based cloud control plane on a signed message bus, and talks to it.

Client commands find the cloud through --state-dir (the endpoints.json and admin token that
'enjin up' writes there), or through --api (default $ENJIN_API) with the token in $ENJIN_TOKEN
or --token-file. Tokens are never taken as flag values: the command line of a process can be
read by other users.`,
		Example: `  enjin up
  enjin tenants create acme
  enjin apps deploy /tmp/hello --tenant acme --name hello
  enjin apps scale acme/hello web=3
  enjin logs acme/hello -f`,
		Version:           version(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(*cobra.Command, []string) error { return g.resolve() },
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetVersionTemplate("enjin {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.stateDir, "state-dir", DefaultStateDir, "state directory: keys, data, and the endpoints.json of 'enjin up'")
	pf.StringVar(&g.api, "api", "", "meta API URL (default $ENJIN_API, else from --state-dir)")
	pf.StringVar(&g.caFile, "ca", "", "the CA certificate ring 0's https API is checked by (default $ENJIN_CA, else the one of --state-dir)")
	pf.StringVar(&g.tokenFile, "token-file", "", "file holding the API token (default $ENJIN_TOKEN, else the admin token of --state-dir)")
	root.AddGroup(&cobra.Group{ID: "run", Title: "Run a cloud:"}, &cobra.Group{ID: "use", Title: "Use a cloud:"})
	add := func(group string, cs ...*cobra.Command) {
		for _, c := range cs {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("run", upCmd(g), initCmd(g), ring0Cmd(g), ring1Cmd(g), backupCmd(g), restoreCmd(g), backupsCmd(g), guestCmd(), benchCmd(g))
	add("use", nodesCmd(g), membersCmd(g), placementsCmd(g), compartmentsCmd(g), tenantsCmd(g), appsCmd(g), imagesCmd(g), vmsCmd(g), volumesCmd(g), networksCmd(g), domainsCmd(g), rulesetsCmd(g), machineTypesCmd(g), logsCmd(g), jobCmd(g), credsCmd(g), verifyCmd(g))
	root.AddCommand(versionCmd())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	verbsOnly(root)
	strictHelp(root)
	return root
}
