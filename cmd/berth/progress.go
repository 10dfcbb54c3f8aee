package main

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/jsonstream"
)

// progressPrinter renders an engine's JSON progress stream the way the
// docker CLI does: on a terminal, one line per layer, redrawn in place with a
// bar; elsewhere, one line per change of a layer's status.
type progressPrinter struct {
	out      io.Writer
	terminal bool
	width    int
	lines    map[string]int // layer id → line index, counted from the first
	n        int            // lines printed so far in the layer block
	last     map[string]string
}

func newProgressPrinter(out io.Writer, terminal bool) *progressPrinter {
	return &progressPrinter{out: out, terminal: terminal, width: 50, lines: map[string]int{}, last: map[string]string{}}
}

// run prints every message of msgs and returns the first error the stream
// reports (a failed pull answers 200 and carries its error in the stream).
func (p *progressPrinter) run(msgs iter.Seq2[jsonstream.Message, error]) error {
	for m, err := range msgs {
		if err != nil {
			return err
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		p.print(m)
	}
	return nil
}

func (p *progressPrinter) print(m jsonstream.Message) {
	if m.Stream != "" {
		fmt.Fprint(p.out, m.Stream)
		return
	}
	if m.ID == "" {
		fmt.Fprintln(p.out, m.Status)
		p.lines, p.n = map[string]int{}, 0
		return
	}
	line := m.ID + ": " + m.Status
	if bar := progressBar(m.Progress, p.width); bar != "" {
		line += " " + bar
	}
	if !p.terminal {
		// Repeated byte counts are noise in a log: print status changes only.
		if p.last[m.ID] == m.Status {
			return
		}
		p.last[m.ID] = m.Status
		fmt.Fprintln(p.out, m.ID+": "+m.Status)
		return
	}
	idx, seen := p.lines[m.ID]
	if !seen {
		p.lines[m.ID] = p.n
		p.n++
		fmt.Fprintf(p.out, "%s\n", line)
		return
	}
	up := p.n - idx
	// Move up to the layer's line, clear it, write, and come back down.
	fmt.Fprintf(p.out, "\x1b[%dA\r\x1b[2K%s\x1b[%dB\r", up, line, up)
}

// progressBar draws "[=====>     ]  1.2MB/3.4MB" for a progress detail.
func progressBar(pr *jsonstream.Progress, width int) string {
	if pr == nil || pr.Current <= 0 {
		return ""
	}
	if pr.Total <= 0 || pr.Current > pr.Total {
		return units.HumanSize(float64(pr.Current))
	}
	filled := int(float64(width) * float64(pr.Current) / float64(pr.Total))
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	return fmt.Sprintf("[%s] %8s/%s", bar, units.HumanSize(float64(pr.Current)), units.HumanSize(float64(pr.Total)))
}
