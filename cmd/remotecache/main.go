// Command remotecache copies, inspects, verifies, prunes, merges, trims and
// compares build caches in the remote cache format that BuildKit reads and
// writes.
//
//	remotecache copy SRC DST [--format F] [--concurrency N] [--json]
//	remotecache inspect SRC [--json|--dot]
//	remotecache verify SRC [--repair [--dry-run]]
//	remotecache prune LOC [--dry-run] [--grace-period D]
//	remotecache merge SRC... DST [--format F] [--concurrency N] [--json]
//	remotecache trim SRC DST [--max-size SIZE] [--max-age D] [--dry-run] [--json]
//	remotecache diff A B [--json|--dot]
//	remotecache version
//	remotecache completion bash|zsh|fish|powershell
//
// A location is oci:DIR[:TAG] (an OCI image layout directory, tag
// "latest" by default), registry:HOST/REPO[:TAG], s3:BUCKET[/PREFIX][:NAME]
// or azblob:CONTAINER[/PREFIX][:NAME] (NAME "buildkit" by default). Every
// command takes --progress=auto|tty|plain|json|quiet and --quiet, and
// --help. Exit status: 0 on success, 1 on failure, 2 on bad usage.
//
// Each command is a file of its own that builds its cobra command; they
// parse, call the library and print.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/log"
	"github.com/spf13/cobra"
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
	tty            bool // stderr is a terminal: --progress=auto draws bars

	// The global flags.
	progressFlag string
	quiet        bool
	// mode is the progress mode the flags chose, set before a command
	// runs.
	mode progressMode

	// root is the command tree of the run.
	root *cobra.Command

	// ran is set when a command's own code starts: an error before it
	// (an unknown command or flag, a wrong number of arguments) is bad
	// usage, one after it a failure unless it is a usageError.
	ran bool
	// failures collects the errors of the steps that failed in an
	// export, so that every distinct cause is told, not only the first.
	failures failures
}

// run runs the tool with args (without the program name) and returns the
// exit status: 0 on success, 1 on failure with one line on stderr, 2 on bad
// usage with the usage of the command.
func (c *cli) run(ctx context.Context, args []string) int {
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	root := c.rootCommand()
	c.root = root
	root.SetArgs(args)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if ue, ok := asUsageError(err); ok || !c.ran {
		if ok && ue.cmd != nil {
			cmd = ue.cmd
		}
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(c.stderr, "remotecache: %s\n\n%s", oneLine(err.Error()), cmd.UsageString())
		return 2
	}
	fmt.Fprintf(c.stderr, "remotecache: %s\n", c.failures.line(err))
	return 1
}

// isTerminal reports whether f is a character device, as a terminal is,
// and the terminal is not one that cannot move the cursor.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}
