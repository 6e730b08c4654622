//go:build !windows

package ocilayout

import "os"

// syncDir makes the entries of dir durable: a rename into it survives a
// crash once dir is synced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
