package sshwire

import "time"

// Requester sends SSH global requests; every ssh.Conn (*ssh.Client, *ssh.ServerConn) is one.
type Requester interface {
	SendRequest(name string, wantReply bool, payload []byte) (bool, []byte, error)
}

// KeepAlive sends RequestKeepAlive on conn every interval (a positive duration) until done is closed, and
// then returns 0. A request still unanswered at the next tick counts as missed and no new one is sent; once
// maxMissed ticks in a row find it missed, KeepAlive returns that count and the caller declares the link
// dead. A request that fails to send is passed to onErr (if not nil) from the goroutine that sent it. Any
// answer counts, success or failure.
func KeepAlive(conn Requester, interval time.Duration, maxMissed int, done <-chan struct{}, onErr func(error)) int {
	t := time.NewTicker(interval)
	defer t.Stop()
	var pending chan struct{}
	missed := 0
	for {
		select {
		case <-t.C:
		case <-done:
			return 0
		}
		if pending != nil {
			select {
			case <-pending:
				missed = 0
			default:
				if missed++; missed >= maxMissed {
					return missed
				}
				continue
			}
		}
		p := make(chan struct{})
		pending = p
		go func() {
			defer close(p)
			if _, _, err := conn.SendRequest(RequestKeepAlive, true, nil); err != nil && onErr != nil {
				onErr(err)
			}
		}()
	}
}
