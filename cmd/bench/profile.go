package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
)

// profiled runs fn under the CPU profiler, writing the profile to name.prof in
// the output directory, and returns pprof's top functions (`go tool pprof -top`
// with the arguments given: -focus, -cum, ...). With --cpuprofile, which profiles
// the whole run, fn just runs.
func profiled(c *config, name string, fn func() error, pprofArgs ...string) (string, error) {
	if c.profiling {
		return "", fn()
	}
	path := filepath.Join(c.out, name+".prof")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return "", err
	}
	err = fn()
	pprof.StopCPUProfile()
	if err != nil {
		return "", err
	}
	return pprofTop(path, append([]string{"-top"}, pprofArgs...)...)
}

// focused adds a -focus flag to pprof's arguments if focus is set.
func focused(focus string, args ...string) []string {
	if focus != "" {
		args = append(args, "-focus="+focus)
	}
	return args
}

// heapProfile writes the heap profile to name.heap in the output directory and
// returns pprof's top allocation sites of the memory in use among the samples
// whose stacks match focus.
func heapProfile(c *config, name, focus string) (string, error) {
	path := filepath.Join(c.out, name+".heap")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	err = pprof.WriteHeapProfile(f)
	f.Close()
	if err != nil {
		return "", err
	}
	return pprofTop(path, focused(focus, "-sample_index=inuse_space", "-top")...)
}

// pprofTop runs `go tool pprof` on a profile of this program and keeps its
// table's first rows.
func pprofTop(path string, args ...string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	args = append([]string{"tool", "pprof", "-nodecount=16"}, args...)
	out, err := exec.Command("go", append(args, exe, path)...).Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %v", path, err)
	}
	var keep []string
	table := false
	for _, line := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		if strings.Contains(line, "flat%") {
			table = true
		}
		if table || strings.HasPrefix(line, "Showing nodes") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n"), nil
}

// profileNote is a note that shows a pprof table.
func profileNote(s *section, what, file, cmd, top string) {
	if top == "" {
		return
	}
	s.note("%s (`%s` on `%s`):\n\n```\n%s\n```", what, cmd, file, top)
}
