package main

import (
	"io"

	"github.com/spf13/cobra"
)

// outputFlags are --json and --dot, of the commands that show a cache
// (inspect, diff): text by default.
type outputFlags struct {
	json, dot bool
}

// addOutputFlags declares --json and --dot on cmd, with what each writes;
// they exclude each other.
func addOutputFlags(cmd *cobra.Command, jsonUsage, dotUsage string) *outputFlags {
	f := &outputFlags{}
	cmd.Flags().BoolVar(&f.json, "json", false, jsonUsage)
	cmd.Flags().BoolVar(&f.dot, "dot", false, dotUsage)
	cmd.MarkFlagsMutuallyExclusive("json", "dot")
	return f
}

// shown is what such a command shows: as JSON, as a Graphviz graph, or as
// text.
type shown interface {
	writeDot(w io.Writer) error
	writeText(w io.Writer) error
}

// write writes v to w in the form the flags ask for.
func (f *outputFlags) write(w io.Writer, v shown) error {
	switch {
	case f.json:
		return writeJSON(w, v)
	case f.dot:
		return v.writeDot(w)
	default:
		return v.writeText(w)
	}
}
