package main

import (
	"fmt"
	"io"
	"strings"
)

// writeDot writes the graph of the report for Graphviz: one node per
// record, one edge per link from the record it is reached from, labelled
// with the input slot and the selector. Records with a result that cannot
// be loaded are red.
func (r *report) writeDot(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph cache {\n")
	fmt.Fprintf(&b, "\tlabel=%s;\n", dotQuote(fmt.Sprintf("%s\n%s, %d records, %d layers, %s", r.Location, r.Format, r.Counts.Records, r.Counts.Layers, humanBytes(r.TotalBytes))))
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
		fmt.Fprintf(&b, "\tr%d [label=%s, tooltip=%s%s];\n", rec.Index, dotQuote(label), dotQuote(string(rec.Digest)), attrs)
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
				fmt.Fprintf(&b, "\tr%d -> r%d [label=%s%s];\n", in.Record, rec.Index, dotQuote(label), attrs)
			}
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote quotes s as a DOT string; a newline becomes a line break.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
