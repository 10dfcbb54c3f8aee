package kmod

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Sentinel errors.
var (
	// ErrNotFound: a wanted module is neither built in nor in the tree.
	ErrNotFound = errors.New("kmod: module not found")
	// ErrFormat: modules.dep, modules.builtin or a module ELF is malformed.
	ErrFormat = errors.New("kmod: malformed module data")
	// ErrCycle: the dependency graph has a cycle.
	ErrCycle = errors.New("kmod: dependency cycle")
	// ErrStage: a Want names a load stage that Stages was not given.
	ErrStage = errors.New("kmod: unknown load stage")
)

// Module is one loadable module of the tree.
type Module struct {
	Name    string   // canonical name: file base without .ko[.xz|.zst], '-' → '_'
	Path    string   // relative to /lib/modules/<ver> ("kernel/fs/ext4/ext4.ko")
	Depends []string // names of hard dependencies
	SoftPre []string // names or aliases of "softdep pre:" modules
	Aliases []string // from modinfo alias= (exact names only are used)
}

// Graph is a kernel's module tree: loadable modules and built-in names.
type Graph struct {
	Modules map[string]*Module // by Name
	Builtin map[string]bool    // by Name
	aliases map[string][]string
}

// NewGraph returns an empty graph.
func NewGraph() *Graph {
	return &Graph{Modules: map[string]*Module{}, Builtin: map[string]bool{}, aliases: map[string][]string{}}
}

// Add puts m into the graph.
func (g *Graph) Add(m *Module) {
	g.Modules[m.Name] = m
	for _, a := range m.Aliases {
		g.aliases[a] = append(g.aliases[a], m.Name)
	}
}

// NameOf returns the canonical module name of a module path.
func NameOf(p string) string {
	b := path.Base(p)
	for _, suf := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, suf)
	}
	b = strings.TrimSuffix(b, ".ko")
	return strings.ReplaceAll(b, "-", "_")
}

// Canon normalises a module name as the kernel does ('-' and '_' are equal).
func Canon(name string) string { return strings.ReplaceAll(name, "-", "_") }

// ParseModulesDep reads a modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko").
func ParseModulesDep(g *Graph, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("%w: modules.dep line %q", ErrFormat, line)
		}
		m := &Module{Name: NameOf(mod), Path: strings.TrimSpace(mod)}
		for _, d := range strings.Fields(deps) {
			m.Depends = append(m.Depends, NameOf(d))
		}
		g.Add(m)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: modules.dep: %v", ErrFormat, err)
	}
	return nil
}

// ParseBuiltin reads modules.builtin (one module path per line).
func ParseBuiltin(g *Graph, r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			g.Builtin[NameOf(line)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: modules.builtin: %v", ErrFormat, err)
	}
	return nil
}

// Modinfo returns the key=value pairs of a module's .modinfo section, in
// order (keys repeat: alias, depends, softdep, parm …).
func Modinfo(ko []byte) ([][2]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%w: no .modinfo section", ErrFormat)
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%w: .modinfo: %v", ErrFormat, err)
	}
	var out [][2]string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			out = append(out, [2]string{k, v})
		}
	}
	return out, nil
}

// ModuleFromELF builds a Module from the path and (uncompressed) bytes of a
// .ko.
func ModuleFromELF(relPath string, ko []byte) (*Module, error) {
	info, err := Modinfo(ko)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", relPath, err)
	}
	m := &Module{Name: NameOf(relPath), Path: relPath}
	for _, kv := range info {
		switch kv[0] {
		case "depends":
			for _, d := range strings.Split(kv[1], ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.Depends = append(m.Depends, Canon(d))
				}
			}
		case "softdep":
			m.SoftPre = append(m.SoftPre, parseSoftPre(kv[1])...)
		case "alias":
			if !strings.ContainsAny(kv[1], "*?[") {
				m.Aliases = append(m.Aliases, kv[1])
			}
		case "name":
			if kv[1] != "" {
				m.Name = Canon(kv[1])
			}
		}
	}
	return m, nil
}

// parseSoftPre returns the "pre:" names of a softdep value
// ("pre: crc32c post: x" → [crc32c]).
func parseSoftPre(v string) []string {
	var out []string
	pre := false
	for _, f := range strings.Fields(v) {
		switch f {
		case "pre:":
			pre = true
		case "post:":
			pre = false
		default:
			if pre {
				out = append(out, f)
			}
		}
	}
	return out
}

// Want is one requested module.
type Want struct {
	Name     string
	Optional bool // absent from this kernel: skipped with a note instead of an error
	// Stage names the load stage the module may wait for (see Stages); "" is the first, the boot stage.
	Stage string
}

// Result is the outcome of Resolve.
type Result struct {
	Load    []*Module // loadable modules in load order, dependencies first
	Builtin []string  // requested or depended-on names that are built in
	Missing []string  // optional names found nowhere
}

// Resolve returns the modules to load for want, dependencies (hard and
// "softdep pre:") first. Order is deterministic: depth-first in the order
// of want and of each module's dependency list.
func (g *Graph) Resolve(want []Want) (Result, error) {
	var res Result
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	builtin := map[string]bool{}
	var visit func(name string, chain []string, soft bool) error
	visit = func(name string, chain []string, soft bool) error {
		name = Canon(name)
		if g.Builtin[name] {
			builtin[name] = true
			return nil
		}
		m := g.Modules[name]
		if m == nil && soft {
			m = g.byAlias(name)
			if m == nil {
				return nil // a soft dependency nobody provides is not needed
			}
			name = m.Name
		}
		if m == nil {
			return fmt.Errorf("%w: %s (needed by %s)", ErrNotFound, name, strings.Join(chain, " → "))
		}
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(append(chain, name), " → "))
		}
		state[name] = visiting
		next := append(append([]string(nil), chain...), name)
		for _, s := range m.SoftPre {
			if err := visit(s, next, true); err != nil {
				return err
			}
		}
		for _, d := range m.Depends {
			if err := visit(d, next, false); err != nil {
				return err
			}
		}
		state[name] = done
		res.Load = append(res.Load, m)
		return nil
	}
	for _, w := range want {
		n := Canon(w.Name)
		if w.Optional && !g.Builtin[n] && g.Modules[n] == nil {
			res.Missing = append(res.Missing, n)
			continue
		}
		if err := visit(n, nil, false); err != nil {
			return Result{}, err
		}
	}
	for n := range builtin {
		res.Builtin = append(res.Builtin, n)
	}
	sort.Strings(res.Builtin)
	return res, nil
}

// Stages resolves want (as Resolve) and splits the load list into stages, in the order of names (""
// first: the boot stage; a Want's Stage must be one of names): stage i holds every module the wants of
// stages 0…i need, dependencies included, that no earlier stage holds. Each stage keeps Resolve's order,
// so loading the stages one after the other respects every dependency: stages 0…i together are closed
// under dependencies. res.Load is the stages concatenated; stages[i] is stage i's part of it.
func (g *Graph) Stages(want []Want, names []string) (res Result, stages [][]*Module, err error) {
	rank := map[string]int{}
	for i, n := range names {
		rank[n] = i
	}
	if len(names) == 0 || names[0] != "" {
		return Result{}, nil, fmt.Errorf("%w: stages %q do not start with the boot stage \"\"", ErrStage, names)
	}
	for _, w := range want {
		if _, ok := rank[w.Stage]; !ok {
			return Result{}, nil, fmt.Errorf("%w: %q (of %s)", ErrStage, w.Stage, w.Name)
		}
	}
	all, err := g.Resolve(want)
	if err != nil {
		return Result{}, nil, err
	}
	stageOf := map[string]int{}
	for i := range names {
		var upTo []Want
		for _, w := range want {
			if rank[w.Stage] <= i {
				upTo = append(upTo, w)
			}
		}
		r, err := g.Resolve(upTo)
		if err != nil {
			return Result{}, nil, err
		}
		for _, m := range r.Load {
			if _, ok := stageOf[m.Name]; !ok {
				stageOf[m.Name] = i
			}
		}
	}
	stages = make([][]*Module, len(names))
	for _, m := range all.Load {
		i := stageOf[m.Name]
		stages[i] = append(stages[i], m)
	}
	all.Load = nil
	for _, st := range stages {
		all.Load = append(all.Load, st...)
	}
	return all, stages, nil
}

// byAlias returns the module providing alias a, preferring a *_generic
// implementation (which loads on every CPU) when several do.
func (g *Graph) byAlias(a string) *Module {
	names := append([]string(nil), g.aliases[a]...)
	if len(names) == 0 {
		return nil
	}
	sort.Slice(names, func(i, j int) bool {
		gi, gj := strings.HasSuffix(names[i], "_generic"), strings.HasSuffix(names[j], "_generic")
		if gi != gj {
			return gi
		}
		return names[i] < names[j]
	})
	return g.Modules[names[0]]
}

// ModulesDep renders modules.dep for the given modules (for busybox modprobe
// in the guest's debug shell), in the given order.
func ModulesDep(mods []*Module, g *Graph) []byte {
	var b bytes.Buffer
	for _, m := range mods {
		fmt.Fprintf(&b, "%s:", m.Path)
		for _, d := range g.closure(m) {
			fmt.Fprintf(&b, " %s", d.Path)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// closure returns m's transitive hard dependencies, nearest first, as
// modules.dep lists them.
func (g *Graph) closure(m *Module) []*Module {
	var out []*Module
	seen := map[string]bool{m.Name: true}
	queue := append([]string(nil), m.Depends...)
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		if d := g.Modules[n]; d != nil {
			out = append(out, d)
			queue = append(queue, d.Depends...)
		}
	}
	return out
}

// LoadList renders the guest's load list: one module path per line,
// relative to /lib/modules/<ver>, in load order.
func LoadList(mods []*Module) []byte {
	var b bytes.Buffer
	for _, m := range mods {
		b.WriteString(m.Path)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
