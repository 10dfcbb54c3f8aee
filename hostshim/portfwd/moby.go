package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// mobyEngine is the Engine of a Docker-compatible API.
type mobyEngine struct{ cl *client.Client }

// NewMobyEngine adapts a Docker API client (in the hostagent: one whose dialer opens direct-streamlocal
// channels to the engine socket).
func NewMobyEngine(cl *client.Client) Engine { return mobyEngine{cl} }

func (e mobyEngine) Events(ctx context.Context) (<-chan Event, <-chan error) {
	res := e.cl.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.Add("type", string(events.ContainerEventType))})
	out := make(chan Event)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case m := <-res.Messages:
				select {
				case out <- Event{ID: m.Actor.ID, Action: string(m.Action)}:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-res.Err:
				if err == nil || errors.Is(err, io.EOF) {
					err = io.EOF
				}
				errc <- fmt.Errorf("engine events: %w", err)
				return
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

func (e mobyEngine) Running(ctx context.Context) ([]string, error) {
	res, err := e.cl.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids := make([]string, 0, len(res.Items))
	for _, c := range res.Items {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

func (e mobyEngine) Inspect(ctx context.Context, id string) (Container, error) {
	res, err := e.cl.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, fmt.Errorf("inspect container %.12s: %w", id, err)
	}
	r := res.Container
	c := Container{ID: r.ID}
	if r.State != nil {
		c.Running = r.State.Running
	}
	if r.HostConfig != nil {
		c.NetworkMode = string(r.HostConfig.NetworkMode)
	}
	if ns := r.NetworkSettings; ns != nil {
		for _, name := range sortedKeys(ns.Networks) {
			if ep := ns.Networks[name]; ep != nil && ep.IPAddress.IsValid() && !ep.IPAddress.IsUnspecified() {
				c.IPs = append(c.IPs, ep.IPAddress)
			}
		}
		for port, bs := range ns.Ports {
			for _, b := range bs {
				c.Bindings = append(c.Bindings, binding(string(port.Proto()), port.Num(), b.HostIP, b.HostPort))
			}
		}
	}
	if len(c.Bindings) == 0 && r.HostConfig != nil {
		for port, bs := range r.HostConfig.PortBindings {
			for _, b := range bs {
				c.Bindings = append(c.Bindings, binding(string(port.Proto()), port.Num(), b.HostIP, b.HostPort))
			}
		}
	}
	return c, nil
}

func binding(proto string, port uint16, hostIP netip.Addr, hostPort string) Binding {
	b := Binding{Proto: proto, ContainerPort: port}
	if hostIP.IsValid() {
		b.HostIP = hostIP.String()
	}
	if p, err := strconv.ParseUint(hostPort, 10, 16); err == nil {
		b.HostPort = uint16(p)
	}
	return b
}
