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

// writeDot writes B's graph for Graphviz with what the comparison found
// on it: the divergence points red and bold, with a dotted edge from the
// record of A each replaced; the other records only in B orange (dashed
// for the content-keyed roots new only because a step above changed); the
// records only in A grey and dashed, linked from their sources (in B when
// B has them). Records in both are black.
func (d *diffResult) writeDot(w io.Writer) error {
	r := d.DiffReport
	cfg := d.b.cfg
	onlyB := map[int]bool{}
	for _, rec := range r.Records.OnlyB {
		onlyB[rec.Record.Index] = true
	}
	divergence := map[int]bool{}
	for _, p := range r.Divergence {
		divergence[p.Record.Index] = true
	}
	consequence := map[int]bool{}
	for _, c := range r.Consequences {
		consequence[c.Record.Index] = true
	}

	var b strings.Builder
	label := fmt.Sprintf("A %s\nB %s\n%s, %d records only in A, %d only in B", d.A, d.B,
		plural(len(r.Divergence), "divergence point"), len(r.Records.OnlyA), len(r.Records.OnlyB))
	fmt.Fprintf(&b, "digraph diff {\n\tlabel=%s;\n", dotQuote(label))
	b.WriteString("\trankdir=LR;\n\tnode [shape=box, fontname=monospace, fontsize=10];\n\tedge [fontname=monospace, fontsize=9];\n")
	for i, rec := range cfg.Records {
		label := fmt.Sprintf("B#%d %s", i, shortDigest(string(rec.Digest)))
		attrs := ""
		switch {
		case divergence[i]:
			label += "\ndivergence point"
			attrs = ", color=red, fontcolor=red, penwidth=3"
		case consequence[i]:
			label += "\nnew: content of a changed step"
			attrs = ", color=orange, style=dashed"
		case onlyB[i]:
			label += "\nonly in B"
			attrs = ", color=orange"
		}
		fmt.Fprintf(&b, "\t%s [label=%s, tooltip=%s%s];\n", dotQuote(fmt.Sprintf("b%d", i)), dotQuote(label), dotQuote(string(rec.Digest)), attrs)
	}
	for i, rec := range cfg.Records {
		for slot, links := range rec.Inputs {
			for _, in := range links {
				attrs := ""
				if onlyB[i] && onlyB[in.LinkIndex] {
					attrs = ", color=orange"
				}
				fmt.Fprintf(&b, "\t%s -> %s [label=%s%s];\n", dotQuote(fmt.Sprintf("b%d", in.LinkIndex)), dotQuote(fmt.Sprintf("b%d", i)), dotQuote(edgeLabel(slot, in.Selector)), attrs)
			}
		}
	}
	if len(r.Records.OnlyA) > 0 {
		b.WriteString("\tsubgraph cluster_a {\n\t\tlabel=\"only in A\";\n\t\tstyle=dashed;\n\t\tcolor=grey;\n\t\tfontcolor=grey;\n")
		for _, rec := range r.Records.OnlyA {
			fmt.Fprintf(&b, "\t\t%s [label=%s, tooltip=%s, color=grey, fontcolor=grey, style=dashed];\n",
				dotQuote(fmt.Sprintf("a%d", rec.Record.Index)), dotQuote(fmt.Sprintf("A#%d %s", rec.Record.Index, shortDigest(string(rec.Record.Digest)))), dotQuote(string(rec.Record.Digest)))
		}
		b.WriteString("\t}\n")
		for _, rec := range r.Records.OnlyA {
			for _, in := range rec.Inputs {
				from := fmt.Sprintf("a%d", in.Source.Index)
				if in.InB != nil {
					from = fmt.Sprintf("b%d", in.InB.Index)
				}
				fmt.Fprintf(&b, "\t%s -> %s [label=%s, color=grey, fontcolor=grey, style=dashed];\n", dotQuote(from), dotQuote(fmt.Sprintf("a%d", rec.Record.Index)), dotQuote(edgeLabel(in.Slot, in.Selector)))
			}
		}
	}
	for _, p := range r.Divergence {
		for _, was := range p.Was {
			fmt.Fprintf(&b, "\t%s -> %s [label=\"was\", style=dotted, color=red, fontcolor=red, constraint=false];\n", dotQuote(fmt.Sprintf("a%d", was.Index)), dotQuote(fmt.Sprintf("b%d", p.Record.Index)))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// edgeLabel labels a link with its input slot and selector.
func edgeLabel(slot int, selector string) string {
	label := fmt.Sprintf("%d", slot)
	if selector != "" {
		label += " " + shortDigest(selector)
	}
	return label
}
