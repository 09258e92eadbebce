package build

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
	"cleanroom/index"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeTarGz writes files, in the order given, as a .tar.gz.
func writeTarGz(t *testing.T, path string, files [][2]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, fc := range files {
		tw.WriteHeader(&tar.Header{Name: fc[0], Mode: 0o644, Size: int64(len(fc[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(fc[1]))
	}
	tw.Close()
	zw.Close()
	f.Close()
}

func gpl2(t *testing.T) string {
	b, err := os.ReadFile("/usr/share/common-licenses/GPL-2")
	if err != nil {
		t.Skip("needs /usr/share/common-licenses/GPL-2 (Debian base-files)")
	}
	return string(b)
}

// TestLicenseFileAfterCode checks that files read before their repository's license
// file still get its license: decisions wait for the end of the source.
func TestLicenseFileAfterCode(t *testing.T) {
	dir := t.TempDir()
	g := gencode.New(5)
	var files [][2]string
	var texts []string
	for i := 0; i < 6; i++ {
		texts = append(texts, g.CFile("", 5))
		files = append(files, [2]string{fmt.Sprintf("proj/src/f%d.c", i), texts[i]})
	}
	files = append(files, [2]string{"proj/COPYING", gpl2(t)})
	archive := filepath.Join(dir, "proj.tar.gz")
	writeTarGz(t, archive, files)
	out := filepath.Join(dir, "ix")
	b, err := New(Options{Out: out, Log: quiet}, []string{archive})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := b.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Manifest.Totals.Docs != 6 || sum.Files != 6 {
		t.Fatalf("indexed %d of %d files: %+v", sum.Manifest.Totals.Docs, sum.Files, sum)
	}
	ix, err := index.Open(out, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for i := 0; i < ix.NumDocs(); i++ {
		d := ix.Doc(i)
		if d.Path != fmt.Sprintf("src/f%d.c", i) || d.LicenseFrom != "repository" || d.Repo.Name != "proj" || d.License != d.Repo.License || d.License == "" {
			t.Errorf("doc %d: %+v (repo %+v)", i, d, *d.Repo)
		}
	}
	if p := b.Progress(); p.Read != p.Total || p.Files != 6 {
		t.Errorf("progress at the end: %+v", p)
	}
}

// TestReproducible builds the same source with one and with four workers: the same
// documents in the same order, with the same fingerprints.
func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	g := gencode.New(6)
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "COPYING"), []byte(gpl2(t)), 0o644)
	for i := 0; i < 40; i++ {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d.c", i)), []byte(g.CFile("", 1+i%7)), 0o644)
	}
	var ixs []*index.Index
	for _, workers := range []int{1, 4} {
		out := filepath.Join(dir, fmt.Sprint("ix", workers))
		b, err := New(Options{Out: out, Workers: workers, Log: quiet, Index: index.BuildOptions{MaxShardPostings: 500}}, []string{src})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		ix, err := index.Open(out, index.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		ixs = append(ixs, ix)
	}
	a, b := ixs[0], ixs[1]
	if a.NumDocs() != 40 || a.NumDocs() != b.NumDocs() || a.NumPostings() != b.NumPostings() || len(a.Manifest.Shards) != len(b.Manifest.Shards) {
		t.Fatalf("docs %d/%d, postings %d/%d", a.NumDocs(), b.NumDocs(), a.NumPostings(), b.NumPostings())
	}
	for i := 0; i < a.NumDocs(); i++ {
		if da, db := a.Doc(i), b.Doc(i); da.Path != db.Path || da.Tokens != db.Tokens {
			t.Errorf("doc %d: %s (%d tokens) vs %s (%d tokens)", i, da.Path, da.Tokens, db.Path, db.Tokens)
		}
	}
	for i, s := range a.Manifest.Shards {
		if s.Postings != b.Manifest.Shards[i].Postings || s.Docs != b.Manifest.Shards[i].Docs {
			t.Errorf("shard %d: %+v vs %+v", i, s, b.Manifest.Shards[i])
		}
	}
}

// TestCancelKeepsPreviousIndex cancels a build: it fails, and the index that was
// there before still opens, with no leftover files.
func TestCancelKeepsPreviousIndex(t *testing.T) {
	dir := t.TempDir()
	g := gencode.New(7)
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "COPYING"), []byte(gpl2(t)), 0o644)
	for i := 0; i < 20; i++ {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d.c", i)), []byte(g.CFile("", 5)), 0o644)
	}
	out := filepath.Join(dir, "ix")
	b, _ := New(Options{Out: out, Log: quiet}, []string{src})
	if _, err := b.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(out)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, _ = New(Options{Out: out, Log: quiet}, []string{src})
	if _, err := b.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled build: err %v", err)
	}
	after, _ := os.ReadDir(out)
	if len(after) != len(before) {
		t.Errorf("files before %v, after %v", before, after)
	}
	ix, err := index.Open(out, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.NumDocs() != 20 {
		t.Errorf("previous index has %d docs", ix.NumDocs())
	}
}

func TestBadSource(t *testing.T) {
	if _, err := New(Options{Out: t.TempDir()}, []string{"/does/not/exist"}); err == nil {
		t.Error("a missing source was accepted")
	}
	if _, err := New(Options{Out: t.TempDir(), Params: fingerprint.Params{K: 0, W: 3}}, []string{"."}); err == nil {
		t.Error("k=0 was accepted")
	}
}

// TestGeneratedWithNotice checks that generated code which states a copyleft
// license of its own is indexed, that generated code without one (protobuf output)
// is skipped, and that the summary and the manifest count both.
func TestGeneratedWithNotice(t *testing.T) {
	g := gencode.New(9)
	notice := "/* Copyright (C) 2024 Free Software Foundation, Inc.\n\n" +
		"   This file is free software; you can redistribute it and/or modify\n" +
		"   it under the terms of the GNU General Public License as published by\n" +
		"   the Free Software Foundation; either version 3, or (at your option)\n" +
		"   any later version.  */\n"
	goCode := "package api\n\nfunc Sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\treturn total\n}\n"
	files := []struct {
		path, text string
		indexed    bool
		license    string
	}{
		{"proj/opcodes/x-opc.c", g.CFile("/* Instruction opcode table for x.\n\n   THIS FILE IS MACHINE GENERATED WITH CGEN.  DO NOT EDIT!\n\n"+
			"   Copyright (C) 2024 Free Software Foundation, Inc.\n*/\n"+notice, 4), true, "GPL-3.0-or-later"},
		{"proj/lib/tables.c", g.CFile("/* This file is automatically generated by gen-tables.awk */\n"+notice, 4), true, "GPL-3.0-or-later"},
		{"proj/include/uapi.h", g.CFile("/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */\n/* Code generated by mktables. DO NOT EDIT. */\n", 4), true, "GPL-2.0-only WITH Linux-syscall-note"},
		{"proj/api/api.pb.go", "// Code generated by protoc-gen-go. DO NOT EDIT.\n// source: api.proto\n\n" + goCode, false, ""},
		{"proj/api/kind_string.go", "// Code generated by \"stringer -type=Kind\"; DO NOT EDIT.\n\n" + goCode, false, ""},
		{"proj/src/main.c", g.CFile("// SPDX-License-Identifier: GPL-2.0+\n", 4), true, "GPL-2.0-or-later"},
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "proj")
	var tgz [][2]string
	for _, f := range files {
		tgz = append(tgz, [2]string{f.path, f.text})
	}
	tgz = append(tgz, [2]string{"proj/COPYING", gpl2(t)})
	archive := src + ".tar.gz"
	writeTarGz(t, archive, tgz)
	out := filepath.Join(dir, "ix")
	b, err := New(Options{Out: out, Log: quiet}, []string{archive})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := b.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Generated != 3 || sum.GeneratedIndexed != 3 || sum.Skipped["generated"] != 2 {
		t.Errorf("summary: %d generated files read, %d indexed, %d skipped; want 3, 3, 2", sum.Generated, sum.GeneratedIndexed, sum.Skipped["generated"])
	}
	if s := sum.Manifest.Sources[0]; s.Generated != 3 || s.GeneratedIndexed != 3 || s.Skipped["generated"] != 2 {
		t.Errorf("manifest source: %+v", s)
	}
	for l := range sum.Licenses {
		if l == "GPL-2.0+" || l == "GPL-2.0 WITH Linux-syscall-note" {
			t.Errorf("summary licenses %v: not canonical", sum.Licenses)
		}
	}
	ix, err := index.Open(out, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	docs := map[string]index.DocInfo{}
	for i := range ix.NumDocs() {
		d := ix.Doc(i)
		docs["proj/"+d.Path] = d
	}
	for _, f := range files {
		t.Run(f.path, func(t *testing.T) {
			d, ok := docs[f.path]
			if ok != f.indexed {
				t.Fatalf("indexed %v, want %v", ok, f.indexed)
			}
			if ok && d.License != f.license {
				t.Errorf("license %q (as found %q), want %q", d.License, d.LicenseAsFound, f.license)
			}
		})
	}
}
