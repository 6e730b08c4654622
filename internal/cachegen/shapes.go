package cachegen

// Shape is a kind of graph the benchmarks measure at several sizes, here
// and side by side with BuildKit (interop/cmd/sidebyside).
type Shape struct {
	// Name is short, for benchmark and case names.
	Name string
	// Doc says what the graph is, for reports.
	Doc string
	// New makes the graph of records distinct records.
	New func(seed int64, records int) *Graph
}

// Shapes are the graph shapes of the benchmarks: ordinary builds and the
// deep lattice in the ways a build engine feeds it.
var Shapes = []Shape{
	{
		Name: "ordinary",
		Doc:  "multi-stage builds (New, default options)",
		New:  New,
	},
	{
		Name: "lattice",
		Doc:  "deep lattice, fed once",
		New:  func(seed int64, n int) *Graph { return Lattice(seed, n, LatticeOptions{}) },
	},
	{
		Name: "twice",
		Doc:  "deep lattice, fed twice into one graph",
		New:  func(seed int64, n int) *Graph { return Lattice(seed, n, LatticeOptions{Twice: true}) },
	},
	{
		Name: "newlink",
		Doc:  "deep lattice, fed twice, the second pass with one new link per record in slot 0",
		New:  func(seed int64, n int) *Graph { return Lattice(seed, n, LatticeOptions{Twice: true, NewLink: true}) },
	},
	{
		Name: "chain128",
		Doc:  "deep lattice, fed once, results with 128-layer chains",
		New:  func(seed int64, n int) *Graph { return Lattice(seed, n, LatticeOptions{Chain: 128}) },
	},
}

// ShapeSizes are the sizes, in distinct records, the shape benchmarks run
// at: time per record across them shows how cost grows.
var ShapeSizes = []int{1000, 4000, 16000, 64000}
