// Command remotecache copies, inspects, verifies, prunes and merges build
// caches in the remote cache format that BuildKit reads and writes.
//
//	remotecache copy SRC DST [--format F] [--concurrency N]
//	remotecache inspect SRC [--json|--dot]
//	remotecache verify SRC
//	remotecache prune DIR [--dry-run]
//	remotecache merge SRC... DST [--format F] [--concurrency N]
//
// SRC and DST are oci:DIR[:TAG] (an OCI image layout directory, tag
// "latest" by default) or registry:HOST/REPO[:TAG]. Every command takes
// --quiet. Exit status: 0 on success, 1 on failure, 2 on bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pkg/errors"

	"github.com/containerd/log"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// containerd's content store logs warnings (such as "failed check for
	// fsverity support") that are noise to a user of this tool.
	_ = log.SetLevel("error")
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, tty: isTerminal(os.Stderr)}
	code := c.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// cli is one run of the tool: where its output goes and how.
type cli struct {
	stdout, stderr io.Writer
	tty            bool // stderr is a terminal: progress bars, not lines
	quiet          bool // no progress at all
}

// command is one subcommand.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	// nargs reports whether n positional arguments are right.
	nargs func(n int) bool
	// flags registers the command's flags and returns the function that
	// runs it with the positional arguments.
	flags func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error
}

var commands = []*command{copyCommand, inspectCommand, verifyCommand, pruneCommand, mergeCommand}

func exactly(n int) func(int) bool { return func(m int) bool { return m == n } }
func atLeast(n int) func(int) bool { return func(m int) bool { return m >= n } }

// usageError is bad usage: exit status 2, with the usage text.
type usageError struct {
	cmd *command // nil: the tool's usage
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *command, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// run runs the tool with args (without the program name) and returns the
// exit status.
func (c *cli) run(ctx context.Context, args []string) int {
	cmd, err := c.dispatch(ctx, args)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		printUsage(c.stdout, cmd)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "remotecache: %s\n\n", ue.msg)
		printUsage(c.stderr, ue.cmd)
		return 2
	default:
		fmt.Fprintf(c.stderr, "remotecache: %s\n", oneLine(err.Error()))
		return 1
	}
}

// dispatch finds the command, parses its flags and runs it. It returns
// the command it found, for the usage text of -h.
func (c *cli) dispatch(ctx context.Context, args []string) (*command, error) {
	if len(args) == 0 {
		return nil, usagef(nil, "no command given")
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		return nil, flag.ErrHelp
	case "help":
		if len(args) == 1 {
			return nil, flag.ErrHelp
		}
		cmd := lookup(args[1])
		if cmd == nil || len(args) > 2 {
			return nil, usagef(nil, "help: unknown command %q", strings.Join(args[1:], " "))
		}
		return cmd, flag.ErrHelp
	}
	cmd := lookup(name)
	if cmd == nil {
		return nil, usagef(nil, "unknown command %q", name)
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by run, usage by printUsage
	fs.BoolVar(&c.quiet, "quiet", false, "")
	runCmd := cmd.flags(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return cmd, err
	}
	if err != nil {
		return cmd, usagef(cmd, "%s: %v", cmd.name, err)
	}
	if !cmd.nargs(len(pos)) {
		return cmd, usagef(cmd, "%s: wrong number of arguments (%d)", cmd.name, len(pos))
	}
	if err := runCmd(ctx, c, pos); err != nil {
		var ue *usageError
		if errors.As(err, &ue) && ue.cmd == nil {
			ue.cmd = cmd
		}
		return cmd, err
	}
	return cmd, nil
}

func lookup(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

// parseInterspersed parses fs's flags wherever they are among args and
// returns the positional arguments in order. The flag package stops at the
// first positional argument; this goes on past it. Everything after "--"
// is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

const usageLocations = `SRC and DST are oci:DIR[:TAG], an OCI image layout directory, or
registry:HOST/REPO[:TAG], a registry repository (loopback hosts over plain
HTTP, credentials from the Docker config); TAG defaults to "latest". Flags
may come before or after the arguments. Every command takes --quiet (no
progress output).

Exit status: 0 on success, 1 on failure, 2 on bad usage.
`

func printUsage(w io.Writer, cmd *command) {
	if cmd != nil {
		fmt.Fprintf(w, "usage: remotecache %s %s\n\n%s\n\n%s", cmd.name, cmd.args, cmd.summary, usageLocations)
		return
	}
	fmt.Fprintf(w, "usage: remotecache COMMAND [ARGS] [FLAGS]\n\ncommands:\n")
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.args)
	}
	fmt.Fprintf(w, "\n%s\nremotecache help COMMAND describes a command.\n", usageLocations)
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// isTerminal reports whether f is a character device, as a terminal is,
// and the terminal is not one that cannot move the cursor.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}
