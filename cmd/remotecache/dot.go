package main

import (
	"fmt"
	"io"
	"strings"
)

// writeDot writes the graph of the report for Graphviz: one node per
// record, one edge per link from the record it is reached from, labelled
// with the input slot and the selector. Records with a result that cannot
// be loaded are red, and so is the graph's label when the config has
// structural problems, which it lists. Node IDs are quoted, so that a link
// index out of range (even a negative one) still makes a valid graph.
func (r *report) writeDot(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph cache {\n")
	label := fmt.Sprintf("%s\n%s, %d records, %d layers, %s", r.Location, r.Format, r.Counts.Records, r.Counts.Layers, humanBytes(r.TotalBytes))
	for _, p := range r.Problems {
		label += "\nPROBLEM: " + p
	}
	fmt.Fprintf(&b, "\tlabel=%s;\n", dotQuote(label))
	if len(r.Problems) > 0 {
		b.WriteString("\tfontcolor=red;\n")
	}
	fmt.Fprintf(&b, "\trankdir=LR;\n\tnode [shape=box, fontname=monospace, fontsize=10];\n\tedge [fontname=monospace, fontsize=9];\n")
	for _, rec := range r.Records {
		label := fmt.Sprintf("#%d %s", rec.Index, shortDigest(string(rec.Digest)))
		attrs := ""
		for _, res := range rec.Results {
			kind := ""
			if res.Chained {
				kind = " chained"
			}
			label += fmt.Sprintf("\n%s%s, %s", plural(len(res.Layers), "layer"), kind, humanBytes(res.Size))
			if res.Problem != "" {
				label += " (" + res.Problem + ")"
				attrs = ", color=red, fontcolor=red"
			}
		}
		fmt.Fprintf(&b, "\t%s [label=%s, tooltip=%s%s];\n", dotNode(rec.Index), dotQuote(label), dotQuote(string(rec.Digest)), attrs)
	}
	for _, rec := range r.Records {
		for slot, links := range rec.Inputs {
			for _, in := range links {
				label := fmt.Sprintf("%d", slot)
				if in.Selector != "" {
					label += " " + shortDigest(in.Selector)
				}
				attrs := ""
				if in.Selector != "" {
					attrs += ", tooltip=" + dotQuote(in.Selector)
				}
				if in.Digest == "" {
					attrs += ", color=red" // a link to no record
				}
				fmt.Fprintf(&b, "\t%s -> %s [label=%s%s];\n", dotNode(in.Record), dotNode(rec.Index), dotQuote(label), attrs)
			}
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotNode is the node ID of the record at index i.
func dotNode(i int) string { return dotQuote(fmt.Sprintf("r%d", i)) }

// dotQuote quotes s as a DOT string; a newline becomes a line break.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
