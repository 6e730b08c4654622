package ocilayout

// SetPruneLockedHook makes every Prune call f while it holds the
// exclusive lock, until restore is called.
func SetPruneLockedHook(f func()) (restore func()) {
	testHookPruneLocked = f
	return func() { testHookPruneLocked = nil }
}

// FailingPruneOption is a PruneOption that fails with err.
func FailingPruneOption(err error) PruneOption {
	return func(*pruneOptions) error { return err }
}
