package remotecache

// Hooks for the external tests (package remotecache_test), which cannot be
// internal tests because they use internal/cachegen, which imports this
// package. This file is compiled only with the tests.
var (
	DecodeConfigForTest     = decodeConfig
	DecodeConfigIntoForTest = decodeConfigInto
)

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
