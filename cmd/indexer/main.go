// Command indexer builds cleanroom indexes of copyleft code and scans files against
// them.
//
//	indexer build --out DIR [flags] SOURCE...
//	indexer scan --index DIR [--format text|json] FILE... | -
//	indexer stats [--format text|json] DIR
//	indexer verify DIR
//	indexer build --index redis://... [--generation G] [--partition I/N] SOURCE...
//	indexer push DIR --index redis://... [--generation G] [--partition I/N]
//	indexer publish --index redis://... --generation G [--partitions N]
//	indexer gc --index redis://... [--drop G]
package main

import (
	"fmt"
	"os"
)

const usage = `usage:
  indexer build --out DIR [flags] SOURCE...   build an index from folders and archives
  indexer build --index redis://... [--partition I/N] SOURCE...
                                              build (a slice of) one into a Redis Cluster
  indexer scan --index DIR [flags] FILE... | - report code that duplicates the index
  indexer stats [--format text|json] DIR      describe an index
  indexer push DIR --index redis://...        upload a local index into a Redis Cluster
  indexer publish --index redis://... --generation G
                                              serve a generation built in partitions
  indexer gc --index redis://...              delete generations retired long enough
  indexer verify DIR                          check every checksum of an index

SOURCE is a directory, an archive (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2, .zip) or a
file, optionally named: NAME=PATH. Run "indexer COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var code int
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "build":
		code = runBuild(args)
	case "scan":
		code = runScan(args)
	case "push":
		code = runPush(args)
	case "publish":
		code = runPublish(args)
	case "gc":
		code = runGC(args)
	case "stats":
		code = runStats(args)
	case "verify":
		code = runVerify(args)
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "indexer: unknown command %q\n\n%s", cmd, usage)
		code = 2
	}
	os.Exit(code)
}

// fail prints an error and returns the exit code for errors.
func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "indexer: "+format+"\n", args...)
	return 2
}
