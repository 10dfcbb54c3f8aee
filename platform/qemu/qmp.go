package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp runs one QMP command on the socket and returns its "return" value.
func qmp(ctx context.Context, sock, command string) (json.RawMessage, error) {
	var nd net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := nd.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	r := bufio.NewReader(c)
	enc := json.NewEncoder(c)
	dec := json.NewDecoder(r)
	var greeting map[string]json.RawMessage
	if err := dec.Decode(&greeting); err != nil {
		return nil, fmt.Errorf("qmp %s: greeting: %w", command, err)
	}
	if _, ok := greeting["QMP"]; !ok {
		return nil, fmt.Errorf("qmp %s: unexpected greeting", command)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if err := enc.Encode(map[string]string{"execute": cmd}); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		ret, err := qmpReply(dec)
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		if cmd == command {
			return ret, nil
		}
	}
	return nil, nil
}

// qmpReply reads messages until the command's reply, skipping asynchronous events.
func qmpReply(dec *json.Decoder) (json.RawMessage, error) {
	for {
		var m struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := dec.Decode(&m); err != nil {
			return nil, err
		}
		switch {
		case m.Error != nil:
			return nil, fmt.Errorf("%s: %s", m.Error.Class, m.Error.Desc)
		case m.Event != "":
			continue
		}
		return m.Return, nil
	}
}
