package main

import (
	"flag"
	"fmt"
	"io"

	"cleanroom/proxy"
	"cleanroom/proxy/modelcard"
)

const modelsUsage = `usage: proxy models check [--policy FILE] [--format text|json] DIR...

Reads the model card (README.md front matter) of each DIR: a Hugging Face snapshot
directory, a models--ORG--NAME directory of the hub cache, or a cache holding them.
Prints, per model, the decision (approved, approved with conditions, needs review,
rejected), the reasons, the lineage through base_model, the flagged training
datasets and the snapshot commit; with --format json, the metadata record to store
beside the artifact. Exits 0 when every model is approved, 1 when one is rejected or
needs review, 2 on an error (a malformed card is one).
`

// runModels is `proxy models check`: the license gate for CI.
func runModels(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, modelsUsage)
		return 2
	}
	fs := flag.NewFlagSet("models check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, modelsUsage); fs.PrintDefaults() }
	policyFile := fs.String("policy", "", "policy `file` (YAML) whose models: section records the license reviews")
	format := fs.String("format", "text", "output format: text or json")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() == 0 || (*format != "text" && *format != "json") {
		fs.Usage()
		return 2
	}
	var mp *proxy.ModelPolicy
	if *policyFile != "" {
		p, err := proxy.LoadPolicy(*policyFile, proxy.Block)
		if err != nil {
			fmt.Fprintf(stderr, "proxy models check: %v\n", err)
			return 2
		}
		mp = p.Models
	}
	set, err := modelcard.Load(fs.Args()...)
	if err != nil {
		fmt.Fprintf(stderr, "proxy models check: %v\n", err)
		return 2
	}
	reps := mp.CheckCards(set)
	if *format == "json" {
		err = modelcard.WriteJSON(stdout, reps)
	} else {
		err = modelcard.WriteText(stdout, reps)
	}
	if err != nil {
		fmt.Fprintf(stderr, "proxy models check: %v\n", err)
		return 2
	}
	return modelcard.Exit(reps)
}
