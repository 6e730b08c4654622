package main

import (
	"encoding/json"
	"fmt"
	"time"

	cacheimport "github.com/moby/buildkit/cache/remotecache/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

func (r *runner) marshalCase(c caseSpec) error {
	t0 := time.Now()
	g := cachegen.New(c.seed, c.records)
	order := g.InOrder()
	ours := cachegen.NewReplayer(g, g.Provider())
	bk := sidebyside.NewBKReplayer(g, g.Provider())
	st := g.Stats()
	fmt.Printf("\n%s: %d records (%d blobs, %d results), generated in %s\n", c.name, len(g.Ops), st.Blobs, st.WithResults, time.Since(t0).Round(time.Millisecond))

	var (
		oursCfg, bkCfg [2]int // records, layers of the last run
	)
	runOurs := func() (err error) {
		oursCfg[0], oursCfg[1], err = r.marshalOurs(ours, order)
		return err
	}
	runBK := func() (err error) {
		bkCfg[0], bkCfg[1], err = r.marshalBK(bk, order)
		return err
	}
	rw := row{name: fmt.Sprintf("Add+Marshal, %s records", thousands(len(g.Ops))), unit: "µs/record", per: float64(len(g.Ops)), records: len(g.Ops)}
	if err := r.runPairs(c, &rw, runOurs, runBK); err != nil {
		return err
	}
	r.notes = append(r.notes, fmt.Sprintf("%s: config has %d records and %d layers (ours), %d records and %d layers (BuildKit)",
		rw.name, oursCfg[0], oursCfg[1], bkCfg[0], bkCfg[1]))
	return nil
}

// marshalOurs replays the graph of ours in order into our CacheChains
// and marshals them, as an export does; it returns the config's number of
// records and of layers.
func (r *runner) marshalOurs(ours *cachegen.Replayer, order []int) (records, layers int, err error) {
	cc := remotecache.NewCacheChains()
	if _, err := ours.Replay(cc, order); err != nil {
		return 0, 0, err
	}
	cfg, _, err := cc.Marshal(r.ctx)
	if err != nil {
		return 0, 0, err
	}
	return len(cfg.Records), len(cfg.Layers), nil
}

// marshalBK is marshalOurs with BuildKit's CacheChains.
func (r *runner) marshalBK(bk *sidebyside.BKReplayer, order []int) (records, layers int, err error) {
	cc := cacheimport.NewCacheChains()
	if _, err := bk.Replay(cc, order); err != nil {
		return 0, 0, err
	}
	cfg, _, err := cc.Marshal(r.ctx)
	if err != nil {
		return 0, 0, err
	}
	return len(cfg.Records), len(cfg.Layers), nil
}

// runPairs runs the warm-ups, then the measured runs of both sides in
// turn, and adds the row. A nil runBK runs our side only.
func (r *runner) runPairs(c caseSpec, rw *row, runOurs, runBK func() error) error {
	if c.warmup {
		if r.sideOurs {
			if err := runOurs(); err != nil {
				return err
			}
		}
		if r.sideBK && runBK != nil {
			if err := runBK(); err != nil {
				return err
			}
		}
	}
	n := r.runs(c)
	for i := range n {
		for _, side := range r.sides() {
			if side == "buildkit" && runBK == nil {
				continue
			}
			f, dst := runOurs, &rw.ours
			if side == "buildkit" {
				f, dst = runBK, &rw.bk
			}
			s, err := r.measure(c.name, side, f)
			if err != nil {
				return errors.Wrapf(err, "%s", side)
			}
			*dst = append(*dst, s)
		}
		fmt.Printf("  run %d/%d:%s\n", i+1, n, r.progressLine(*rw))
	}
	r.rows = append(r.rows, *rw)
	return nil
}

// importCase parses one cache config (our Marshal of a generated graph)
// into a new graph: remotecache.Parse into a CacheChains against
// BuildKit's v1.Parse into its CacheChains, same bytes, same descriptors.
func (r *runner) importCase(c caseSpec) error {
	g := cachegen.New(c.seed, c.records)
	cc := remotecache.NewCacheChains()
	if err := cachegen.Replay(cc, g, nil, g.Provider()); err != nil {
		return err
	}
	cfg, descs, err := cc.Marshal(r.ctx)
	if err != nil {
		return err
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	bkDescs := cacheimport.DescriptorProvider{}
	for d, p := range descs {
		bkDescs[d] = cacheimport.DescriptorProviderPair{Descriptor: p.Descriptor, Provider: g.Provider()}
	}
	fmt.Printf("\n%s: config of %d records, %d layers, %s\n", c.name, len(cfg.Records), len(cfg.Layers), size(int64(len(config))))
	runOurs := func() error { return remotecache.Parse(config, descs, remotecache.NewCacheChains()) }
	runBK := func() error { return cacheimport.Parse(config, bkDescs, cacheimport.NewCacheChains()) }
	rw := row{name: fmt.Sprintf("Import (Parse+Add), %s records", thousands(len(cfg.Records))), unit: "µs/record", per: float64(len(cfg.Records)), records: len(cfg.Records)}
	if err := r.runPairs(c, &rw, runOurs, runBK); err != nil {
		return err
	}
	return nil
}
