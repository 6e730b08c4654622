package remotecache

// Hooks for the external tests (package remotecache_test), which cannot be
// internal tests because they use internal/cachegen, which imports this
// package. This file is compiled only with the tests.
var (
	DecodeConfigForTest     = decodeConfig
	DecodeConfigIntoForTest = decodeConfigInto
)

// decodeConfig decodes a cache config as json.Unmarshal would into a new
// CacheConfig.
func decodeConfig(data []byte) (*CacheConfig, error) {
	c := new(CacheConfig)
	if err := decodeConfigInto(data, c); err != nil {
		return nil, err
	}
	return c, nil
}
