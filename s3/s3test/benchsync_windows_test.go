package s3test

// benchSync does nothing on Windows, which has no sync(2): its
// FlushFileBuffers flushes one file or volume at a time. A no-op is fine
// for a benchmark: the first timed runs may pay for writes still pending,
// so the numbers there are noisier.
func benchSync() {}
