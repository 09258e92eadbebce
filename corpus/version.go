package corpus

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// dpkgTimeout bounds each dpkg-query run.
const dpkgTimeout = 10 * time.Second

// sourceVersion returns the version and URL base of a source where they can be known:
// from the git work tree at a directory source's root, else from the Debian package
// that owns the source's path. Every failure gives empty strings.
func sourceVersion(s *Source) (version, urlBase string) {
	if s.Kind == KindDir {
		if commit, remote := gitHead(s.real); commit != "" {
			if repo := githubRepo(remote); repo != "" {
				urlBase = "https://github.com/" + repo + "/blob/" + commit + "/"
			}
			return commit, urlBase
		}
	}
	if tmp, err := filepath.EvalSymlinks(os.TempDir()); err == nil && strings.HasPrefix(s.real, tmp+string(filepath.Separator)) {
		return "", "" // no package owns a temporary file; dpkg-query would take 0.3 s to say so
	}
	pkg := dpkgOwner(s.real)
	if pkg == "" {
		return "", ""
	}
	fields := strings.Split(dpkgQuery("-W", "-f", "${Version}\t${source:Package}\t${source:Version}", pkg), "\t")
	if len(fields) != 3 || fields[0] == "" {
		return "", ""
	}
	version = fields[0]
	if s.Kind != KindDir && s.Kind != KindFile && fields[1] != "" && fields[2] != "" && hasTopDir(s) {
		urlBase = "https://sources.debian.org/src/" + fields[1] + "/" + fields[2] + "/"
	}
	return version, urlBase
}

// dpkgOwner returns the first package that owns path, or "".
func dpkgOwner(path string) string {
	out := dpkgQuery("-S", path)
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "diversion ") {
			continue
		}
		// "pkg1, pkg2: /path" or "libc6:amd64: /path"
		i := strings.LastIndex(line, ": ")
		if i < 0 {
			continue
		}
		first, _, _ := strings.Cut(line[:i], ",")
		return strings.TrimSpace(first)
	}
	return ""
}

// dpkgQuery runs dpkg-query and returns its output, or "" on any failure.
func dpkgQuery(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), dpkgTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dpkg-query", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// hasTopDir reports whether the archive's first entry lies in a directory, as in a
// source tarball whose files are all under "name-version/". Only the first entry is
// read; Repos learns during the Walk whether that directory is the only one.
func hasTopDir(s *Source) bool {
	f, err := os.Open(s.real)
	if err != nil {
		return false
	}
	defer f.Close()
	var name string
	if s.Kind == KindZip {
		zr, err := zip.NewReader(f, s.size)
		if (err != nil && !errors.Is(err, zip.ErrInsecurePath)) || len(zr.File) == 0 {
			return false
		}
		name = zr.File[0].Name
	} else {
		d, err := decompressor(tarCodecs[s.Kind], bufio.NewReader(f))
		if err != nil {
			return false
		}
		defer d.Close()
		tr := tar.NewReader(d)
		for {
			h, err := tr.Next()
			if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
				return false
			}
			if h.Typeflag != tar.TypeXGlobalHeader {
				name = h.Name
				break
			}
		}
	}
	p, ok := cleanEntryName(name)
	return ok && p != "" && (strings.Contains(p, "/") || strings.HasSuffix(name, "/"))
}

// gitHead returns the HEAD commit of the git work tree at dir and the URL of its
// "origin" remote, reading .git directly; "" when dir is not a work tree.
func gitHead(dir string) (commit, origin string) {
	gitDir := filepath.Join(dir, ".git")
	fi, err := os.Lstat(gitDir)
	if err != nil {
		return "", ""
	}
	if fi.Mode().IsRegular() {
		// A linked work tree or a submodule: "gitdir: PATH".
		data, err := os.ReadFile(gitDir)
		if err != nil {
			return "", ""
		}
		p, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir: ")
		if !ok {
			return "", ""
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		gitDir = p
	} else if !fi.IsDir() {
		return "", ""
	}
	head, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return "", ""
	}
	common := gitDir
	if data, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		c := strings.TrimSpace(string(data))
		if !filepath.IsAbs(c) {
			c = filepath.Join(gitDir, c)
		}
		common = c
	}
	commit = strings.TrimSpace(string(head))
	if ref, ok := strings.CutPrefix(commit, "ref: "); ok {
		commit = resolveRef(gitDir, common, ref)
	}
	if !commitRE.MatchString(commit) {
		return "", ""
	}
	return commit, gitRemote(filepath.Join(common, "config"), "origin")
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// resolveRef returns the commit a ref names, from its loose file or packed-refs.
func resolveRef(gitDir, common, ref string) string {
	if strings.Contains(ref, "..") {
		return ""
	}
	for _, d := range []string{gitDir, common} {
		if data, err := os.ReadFile(filepath.Join(d, filepath.FromSlash(ref))); err == nil {
			return strings.TrimSpace(string(data))
		}
	}
	f, err := os.Open(filepath.Join(common, "packed-refs"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if hash, name, ok := strings.Cut(sc.Text(), " "); ok && name == ref {
			return hash
		}
	}
	return ""
}

// gitRemote returns the url of a remote in a git config file, or "".
func gitRemote(configPath, remote string) string {
	f, err := os.Open(configPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = line == `[remote "`+remote+`"]`
			continue
		}
		if !in {
			continue
		}
		if key, val, ok := strings.Cut(line, "="); ok && strings.TrimSpace(key) == "url" {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

var githubRE = regexp.MustCompile(`^(?:https?://(?:[^@/]+@)?github\.com/|git@github\.com:|ssh://git@github\.com/|git://github\.com/)([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$`)

// githubRepo returns "OWNER/REPO" for a GitHub remote URL, else "".
func githubRepo(url string) string {
	if m := githubRE.FindStringSubmatch(url); m != nil {
		return m[1]
	}
	return ""
}
