package hcs

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// splitArgs splits a command line as CommandLineToArgvW does for the arguments after the program name
// (and as the C runtime does): whitespace outside quotes separates arguments; 2n backslashes before a
// quote become n and the quote toggles quoting; 2n+1 become n and a literal quote; other backslashes are
// literal; inside quotes, "" is a literal quote.
func splitArgs(line string) []string {
	var (
		args    []string
		cur     strings.Builder
		inArg   bool
		inQuote bool
	)
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == '\\':
			n := 0
			for i < len(line) && line[i] == '\\' {
				n++
				i++
			}
			if i < len(line) && line[i] == '"' {
				cur.WriteString(strings.Repeat(`\`, n/2))
				if n%2 == 1 {
					cur.WriteByte('"')
					i++
				}
			} else {
				cur.WriteString(strings.Repeat(`\`, n))
			}
			inArg = true
		case c == '"':
			inArg = true
			if inQuote && i+1 < len(line) && line[i+1] == '"' {
				cur.WriteByte('"')
				i += 2
				continue
			}
			inQuote = !inQuote
			i++
		case (c == ' ' || c == '\t') && !inQuote:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
			i++
		default:
			cur.WriteByte(c)
			inArg = true
			i++
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// Whatever the arguments, CommandLine's line splits back into them.
func TestCommandLineRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", " ", "\t", `\`, `"`, "é", "\n", "x"}
	for range 20000 {
		argv := make([]string, 1+r.IntN(4))
		for i := range argv {
			var b strings.Builder
			for range r.IntN(7) {
				b.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			argv[i] = b.String()
		}
		line := CommandLine(argv)
		if got := splitArgs(line); !slices.Equal(got, argv) {
			t.Fatalf("CommandLine(%q) = %s, which splits into %q", argv, line, got)
		}
	}
}
