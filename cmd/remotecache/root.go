package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// rootCommand builds the tool's command tree for one run.
func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "remotecache COMMAND",
		Short: "Copy, inspect, verify, repair, prune, merge, trim and compare build caches",
		Long: `remotecache works on build caches in the remote cache format that BuildKit
reads and writes, wherever they are: an OCI image layout directory, a
registry, an S3 bucket, an Azure Blob Storage container.`,
		Version:               version().Main,
		SilenceErrors:         true, // run prints them, once
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		CompletionOptions:     cobra.CompletionOptions{DisableDefaultCmd: true},
		Annotations:           map[string]string{footerAnnotation: rootFooter},
		// Args is left nil: cobra then says an unknown command is one.
		RunE: func(*cobra.Command, []string) error {
			return usagef("no command given")
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return c.chooseProgress()
		},
	}
	root.InitDefaultHelpFlag()
	root.InitDefaultVersionFlag()
	root.SetUsageTemplate(usageTemplate)
	root.SetHelpTemplate(helpTemplate)
	root.SetVersionTemplate("remotecache version {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%s: %v", cmd.Name(), err)
	})
	pf := root.PersistentFlags()
	pf.StringVar(&c.progressFlag, "progress", string(progressAuto), "show progress on stderr as `MODE`: auto (tty on a terminal, else plain), tty, plain, json or quiet")
	pf.BoolVarP(&c.quiet, "quiet", "q", false, "show no progress (--progress=quiet)")
	_ = root.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions(
		[]string{"auto", "tty", "plain", "json", "quiet"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		c.copyCommand(),
		c.inspectCommand(),
		c.verifyCommand(),
		c.pruneCommand(),
		c.mergeCommand(),
		c.trimCommand(),
		c.diffCommand(),
		c.versionCommand(),
		c.completionCommand(),
	)
	root.SetHelpCommand(c.helpCommand(root))
	// As cobra does when a command runs, so that "help COMMAND" shows
	// the same flags as "COMMAND --help".
	for _, cmd := range root.Commands() {
		cmd.InitDefaultHelpFlag()
	}
	return root
}

// chooseProgress sets the progress mode from the flags.
func (c *cli) chooseProgress() error {
	m, err := parseProgressMode(c.progressFlag)
	if err != nil {
		return err
	}
	if c.quiet {
		if c.progressFlag != string(progressAuto) && m != progressQuiet {
			return usagef("--quiet and --progress=%s do not go together", m)
		}
		m = progressQuiet
	}
	if m == progressAuto {
		m = progressPlain
		if c.tty {
			m = progressTTY
		}
	}
	c.mode = m
	return nil
}

// runE is a command's RunE: from here on an error is a failure, unless it
// is a usageError.
func (c *cli) runE(run func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c.ran = true
		return run(cmd.Context(), args)
	}
}

// exactArgs and minArgs check the number of positional arguments, with a
// usage error that says what the command wants.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: wrong number of arguments (%d)", cmd.Name(), len(args))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: wrong number of arguments (%d)", cmd.Name(), len(args))
		}
		return nil
	}
}

// locationCommand completes cmd, whose arguments are locations, as many
// as args allows: its help ends with the forms a location takes, the
// shell completes them, and the usage line is Use as written (it spells
// the flags out).
func locationCommand(cmd *cobra.Command, args cobra.PositionalArgs) *cobra.Command {
	cmd.Args = args
	cmd.DisableFlagsInUseLine = true
	cmd.Annotations = map[string]string{footerAnnotation: locations}
	cmd.ValidArgsFunction = completeLocations
	return cmd
}

// runLocations is runE for a command whose arguments are all locations:
// run gets them parsed, and one that does not parse is bad usage.
func (c *cli) runLocations(run func(ctx context.Context, locs []location) error) func(*cobra.Command, []string) error {
	return c.runE(func(ctx context.Context, args []string) error {
		locs, err := parseLocations(args)
		if err != nil {
			return err
		}
		return run(ctx, locs)
	})
}

// helpCommand is "help [COMMAND]": as cobra's, but a command it does not
// know is bad usage.
func (c *cli) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:                   "help [COMMAND]",
		Short:                 "Describe a command",
		DisableFlagsInUseLine: true,
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			for _, sub := range root.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				return &usageError{cmd: root, msg: fmt.Sprintf("help: unknown command %q", strings.Join(args, " "))}
			}
			return target.Help()
		},
	}
}

// footerAnnotation is the annotation of a command whose value the usage
// text ends with.
const footerAnnotation = "footer"

// The usage (printed on bad usage) and help (printed by --help) of every
// command: the help has the command's description and footer too.
const (
	usageFlags = `{{if .HasAvailableSubCommands}}
Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}
{{end}}{{if .HasAvailableLocalFlags}}
Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}{{if .HasAvailableInheritedFlags}}
Global flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}`
	usageTemplate = "usage: {{.UseLine}}\n" + usageFlags + `
Run "{{.CommandPath}} --help" for more.
`
	helpTemplate = "usage: {{.UseLine}}\n{{with .Long}}\n{{.}}\n{{end}}" + usageFlags + `{{with index .Annotations "footer"}}
{{.}}
{{end}}`
)

// locations describes the locations; the commands that take one end their
// usage with it.
const locations = `Locations:
  oci:DIR[:TAG]                          an OCI image layout directory (TAG "latest")
  registry:HOST/REPO[:TAG]               a registry repository (TAG "latest"); loopback
                                         hosts over plain HTTP, credentials from the
                                         Docker config
  s3:BUCKET[/PREFIX][:NAME]              an S3 bucket, in BuildKit's type=s3 layout
                                         (NAME "buildkit"; NAME a;b for several);
                                         endpoint, region and credentials from the AWS
                                         SDK's environment (AWS_ENDPOINT_URL, AWS_REGION,
                                         AWS_ACCESS_KEY_ID, ...) and shared files
  azblob:CONTAINER[/PREFIX][:NAME]       an Azure Blob Storage container, in BuildKit's
                                         type=azblob layout (NAME "buildkit"); account
                                         and credentials from AZURE_STORAGE_CONNECTION_STRING,
                                         else AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY,
                                         AZURE_STORAGE_SAS_TOKEN or the Azure SDK's
                                         default credential
PREFIX is joined to the keys as BuildKit joins it: as it is in s3: (end it
with "/" for a directory), as a path in azblob:.`

const rootFooter = locations + `

Flags may come before or after the arguments. Progress goes to stderr,
results to stdout.

Exit status: 0 on success, 1 on failure, 2 on bad usage.
Run "remotecache help COMMAND" or "remotecache COMMAND --help" for more about a command.`
