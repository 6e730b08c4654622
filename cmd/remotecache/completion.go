package main

import (
	"context"

	"github.com/spf13/cobra"
)

func (c *cli) completionCommand() *cobra.Command {
	var noDesc bool
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the script that completes remotecache's commands, flags and
location kinds in the given shell. To load it:

  bash        source <(remotecache completion bash)
              (needs the bash-completion package)
  zsh         remotecache completion zsh > "${fpath[1]}/_remotecache"
  fish        remotecache completion fish | source
  powershell  remotecache completion powershell | Out-String | Invoke-Expression`,
		DisableFlagsInUseLine: true,
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		Args: func(cmd *cobra.Command, args []string) error {
			if err := exactArgs(1)(cmd, args); err != nil {
				return err
			}
			return cobra.OnlyValidArgs(cmd, args)
		},
		RunE: c.runE(func(_ context.Context, args []string) error {
			root := c.root
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(c.stdout, !noDesc)
			case "zsh":
				if noDesc {
					return root.GenZshCompletionNoDesc(c.stdout)
				}
				return root.GenZshCompletion(c.stdout)
			case "fish":
				return root.GenFishCompletion(c.stdout, !noDesc)
			default:
				if noDesc {
					return root.GenPowerShellCompletion(c.stdout)
				}
				return root.GenPowerShellCompletionWithDesc(c.stdout)
			}
		}),
	}
	cmd.Flags().BoolVar(&noDesc, "no-descriptions", false, "leave out the descriptions of completions")
	return cmd
}
