package objstoretest

import (
	"fmt"
	"net"
	"time"
)

// FreePort returns an address of 127.0.0.1 with a port free just now, for
// a server to listen on.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitListening waits until something listens at addr, or the server
// (named name in the error) exits (exited is closed), or timeout passes.
func WaitListening(name, addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited", name)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening on %s after %s", name, addr, timeout)
}
