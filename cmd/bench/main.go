// Command bench measures cleanroom end to end on the Debian corpora and writes the
// table to docs/BENCHMARKS.md: fingerprinting against the hardware limit, the
// kernel build, lookups, the gateway against a plain httputil.ReverseProxy, and the
// holdback. `make bench` runs it after the Go benchmarks.
//
//	bench [--out out/bench] [--write docs/BENCHMARKS.md]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"cleanroom/index"
)

type config struct {
	memprofile string
	profiling  bool // --cpuprofile profiles the whole run
	out        string
	write      string
	kernel     string
	indexer    string // the indexer binary to time
	rounds     int
	pace       time.Duration // of the holdback figure's upstream
	reuse      bool          // reuse an index built before
	goBench    string        // file with `go test -bench` output to include
	log        *slog.Logger

	files []file       // the kernel's .c and .h files
	index string       // the kernel index's directory
	ix    *index.Index // and the index, loaded
}

func main() {
	var c config
	flag.StringVar(&c.out, "out", "out/bench", "`directory` for the index the benchmark builds")
	flag.StringVar(&c.write, "write", "", "`file` to write the report to (docs/BENCHMARKS.md)")
	flag.StringVar(&c.kernel, "kernel", "/usr/src/linux-source-6.1.tar.xz", "linux-source-6.1 archive")
	flag.StringVar(&c.indexer, "indexer", "bin/indexer", "indexer binary (make build)")
	flag.IntVar(&c.rounds, "rounds", 7, "alternating rounds of the gateway comparison")
	flag.DurationVar(&c.pace, "pace", 2*time.Millisecond, "time between tokens of the holdback figure's upstream")
	flag.BoolVar(&c.reuse, "reuse", false, "reuse the index in --out if there is one (no build figures)")
	only := flag.String("steps", "", "comma-separated `steps` to run (fingerprinting, build, lookups, redis, gateway, holdback, rename, gobench); default all")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to `file`")
	flag.StringVar(&c.memprofile, "memprofile", "", "write heap profiles of cleanroom's open streams to `file`.annotate and `file`.block")
	flag.StringVar(&c.goBench, "gobench", "", "`file` of `go test -bench` output to include in the report, in place of running the benchmarks")
	flag.Parse()
	c.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	noKernel := false
	if _, err := os.Stat(c.kernel); err != nil {
		// Without the corpus only the Go benchmarks run (on generated data).
		fmt.Fprintf(os.Stderr, "bench: %v: skipping the kernel-sized figures (make bench installs linux-source-6.1)\n", err)
		noKernel = true
	}
	var r report
	r.started = time.Now()
	if c.goBench != "" {
		b, err := os.ReadFile(c.goBench)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(2)
		}
		r.goBench = string(b)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	steps := []struct {
		name string
		run  func(*config, *report) error
	}{
		{"fingerprinting", fingerprinting},
		{"build", buildKernel},
		{"lookups", lookups},
		{"redis", redisCluster},
		{"gateway", gateway},
		{"holdback", holdback},
		{"rename", renameCost},
		{"gobench", goBenchmarks},
	}
	if *cpuprofile != "" {
		c.profiling = true
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	for _, s := range steps {
		// The later steps need the index: build (or reuse) it whatever --steps says.
		if *only != "" && !slices.Contains(strings.Split(*only, ","), s.name) && s.name != "build" ||
			noKernel && s.name != "gobench" {
			continue
		}
		c.log.Info("measuring", "step", s.name)
		if err := s.run(&c, &r); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", s.name, err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
	}
	out := r.markdown(&c)
	fmt.Print(out)
	if c.write != "" {
		if err := os.WriteFile(c.write, []byte(out), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
	}
}

// machine describes where the benchmark ran.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d cores (%s)%s, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// gitDescribe names the commit measured.
func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "commit unknown"
	}
	return "commit " + strings.TrimSpace(string(out))
}
