package specgen

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func processFor(base *specs.Spec, rootfs fs.FS, cmd []string, env []string, user, workdir string, tty bool) (*specs.Process, error) {
	if base == nil || base.Process == nil {
		return nil, fmt.Errorf("exec: base spec has no process: %w", ErrInvalid)
	}
	bp := base.Process
	if len(cmd) == 0 || cmd[0] == "" {
		return nil, fmt.Errorf("exec: no command specified: %w", ErrInvalid)
	}
	if err := validateEnv(env); err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}

	u := bp.User
	u.AdditionalGids = slices.Clone(u.AdditionalGids)
	newEnv := slices.Clone(bp.Env)
	if user != "" {
		resolved, home, err := resolveUser(rootfs, user)
		if err != nil {
			return nil, fmt.Errorf("exec: %w", err)
		}
		// HOME follows the user when base's HOME was its user's default.
		if _, baseHome, err := resolveUser(rootfs, strconv.FormatUint(uint64(bp.User.UID), 10)); err == nil {
			if v, ok := getEnv(newEnv, "HOME"); ok && v == baseHome {
				newEnv = mergeEnv(newEnv, []string{"HOME=" + home})
			}
		}
		u = resolved
	}
	if tty && !hasEnv(newEnv, "TERM") {
		newEnv = append(newEnv, "TERM=xterm")
	}
	newEnv = mergeEnv(newEnv, env)

	cwd := workdir
	if cwd == "" {
		cwd = bp.Cwd
	}
	if cwd == "" {
		cwd = "/"
	}
	cwd, err := containerPath("exec working directory", cwd)
	if err != nil {
		return nil, err
	}

	p := &specs.Process{
		Terminal:        tty,
		User:            u,
		Args:            slices.Clone(cmd),
		Env:             newEnv,
		Cwd:             cwd,
		Rlimits:         slices.Clone(bp.Rlimits),
		NoNewPrivileges: bp.NoNewPrivileges,
		ApparmorProfile: bp.ApparmorProfile,
		SelinuxLabel:    bp.SelinuxLabel,
	}
	if bp.OOMScoreAdj != nil {
		v := *bp.OOMScoreAdj
		p.OOMScoreAdj = &v
	}
	if bp.Capabilities != nil {
		p.Capabilities = capSet(bp.Capabilities.Bounding, u.UID)
	}
	return p, nil
}
