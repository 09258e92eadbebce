package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// goBenchmarks runs the packages' Go benchmarks, the index ones on the kernel
// index, unless --gobench gave their output already.
func goBenchmarks(c *config, r *report) error {
	if r.goBench != "" {
		return nil
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchmem", "./...")
	cmd.Env = os.Environ()
	if c.index != "" {
		abs, err := filepath.Abs(c.index)
		if err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, "CLEANROOM_BENCH_INDEX="+abs)
	}
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, os.Stderr)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -bench: %v", err)
	}
	// Keep the benchmark lines and the package headers they belong to.
	var keep bytes.Buffer
	for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
		if bytes.HasPrefix(line, []byte("Benchmark")) || bytes.HasPrefix(line, []byte("pkg: ")) {
			keep.Write(line)
			keep.WriteByte('\n')
		}
	}
	r.goBench = keep.String()
	r.goBenchIndex = c.index
	return nil
}
