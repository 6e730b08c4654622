package remotecache

// Hooks for the external tests (package remotecache_test), which cannot be
// internal tests because they use internal/cachegen, which imports this
// package. This file is compiled only with the tests.
var (
	DecodeConfigForTest     = decodeConfig
	DecodeConfigIntoForTest = decodeConfigInto
)

// NewCacheChainsWithResultBatchForTest returns an empty graph whose Adds
// hand their results over in batches of n (resultqueue.go), so that tests
// can make the other goroutine start and stop at every Add.
func NewCacheChainsWithResultBatchForTest(n int) *CacheChains {
	c := NewCacheChains()
	c.rq.size = n
	return c
}

// TakingResultsForTest tells whether a goroutine is taking c's results.
func TakingResultsForTest(c *CacheChains) bool {
	c.rq.mu.Lock()
	defer c.rq.mu.Unlock()
	return c.rq.running
}

// MinEntryJSONForTest is Parse's bound on the length of a layer or record,
// for benchmarks that size slices as Parse does.
const MinEntryJSONForTest = minEntryJSON

// decodeConfig decodes a cache config as json.Unmarshal would into a new
// CacheConfig.
func decodeConfig(data []byte) (*CacheConfig, error) {
	c := new(CacheConfig)
	if err := decodeConfigInto(data, c); err != nil {
		return nil, err
	}
	return c, nil
}
