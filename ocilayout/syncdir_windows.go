package ocilayout

// syncDir does nothing on Windows, which has no fsync of a directory:
// (*os.File).Sync on one fails, as FlushFileBuffers wants a handle open
// for writing. The rename still replaces the file atomically; only its
// durability across a power loss rests on NTFS's metadata journal.
func syncDir(string) error { return nil }
