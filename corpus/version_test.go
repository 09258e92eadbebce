package corpus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGitVersion(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	const other = "fedcba9876543210fedcba9876543210fedcba98"
	tests := []struct {
		name        string
		files       map[string]string
		wantVersion string
		wantURL     string
	}{
		{"loose ref, https", map[string]string{
			".git/HEAD":            "ref: refs/heads/main\n",
			".git/refs/heads/main": commit + "\n",
			".git/config":          "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://github.com/torvalds/linux.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
		}, commit, "https://github.com/torvalds/linux/blob/" + commit + "/"},
		{"packed ref, ssh", map[string]string{
			".git/HEAD":        "ref: refs/heads/master\n",
			".git/packed-refs": "# pack-refs with: peeled fully-peeled sorted\n" + other + " refs/heads/dev\n" + commit + " refs/heads/master\n",
			".git/config":      "[remote \"upstream\"]\n\turl = https://github.com/x/y\n[remote \"origin\"]\n\turl = git@github.com:emacs-mirror/emacs.git\n",
		}, commit, "https://github.com/emacs-mirror/emacs/blob/" + commit + "/"},
		{"detached, not github", map[string]string{
			".git/HEAD":   commit + "\n",
			".git/config": "[remote \"origin\"]\n\turl = https://gitlab.com/a/b.git\n",
		}, commit, ""},
		{"no origin", map[string]string{".git/HEAD": commit + "\n"}, commit, ""},
		{"unborn branch", map[string]string{".git/HEAD": "ref: refs/heads/main\n"}, "", ""},
		{"not a work tree", map[string]string{"a.c": "int a;\n"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tt.files)
			src, err := OpenSource(dir)
			must(t, err)
			if src.Version != tt.wantVersion || src.URLBase != tt.wantURL {
				t.Errorf("Version %q URLBase %q, want %q %q", src.Version, src.URLBase, tt.wantVersion, tt.wantURL)
			}
		})
	}
	t.Run("linked work tree", func(t *testing.T) {
		main := t.TempDir()
		writeTree(t, main, map[string]string{
			".git/config":                 "[remote \"origin\"]\n\turl = ssh://git@github.com/o/r.git\n",
			".git/worktrees/wt/HEAD":      "ref: refs/heads/feature\n",
			".git/worktrees/wt/commondir": "../..\n",
			".git/refs/heads/feature":     commit + "\n",
		})
		wt := t.TempDir()
		writeTree(t, wt, map[string]string{".git": "gitdir: " + filepath.Join(main, ".git/worktrees/wt") + "\n"})
		src, err := OpenSource(wt)
		must(t, err)
		if src.Version != commit || src.URLBase != "https://github.com/o/r/blob/"+commit+"/" {
			t.Errorf("Version %q URLBase %q", src.Version, src.URLBase)
		}
	})
}

func TestGithubRepo(t *testing.T) {
	for url, want := range map[string]string{
		"https://github.com/golang/go":          "golang/go",
		"https://github.com/golang/go.git":      "golang/go",
		"https://user@github.com/golang/go.git": "golang/go",
		"git@github.com:golang/go.git":          "golang/go",
		"ssh://git@github.com/golang/go":        "golang/go",
		"https://github.com/golang/go/":         "golang/go",
		"https://gitlab.com/golang/go":          "",
		"https://github.com/golang":             "",
		"https://github.com.evil.com/a/b":       "",
	} {
		if got := githubRepo(url); got != want {
			t.Errorf("githubRepo(%q) = %q, want %q", url, got, want)
		}
	}
}

// TestDebianVersion checks the version of a source that a Debian package owns.
func TestDebianVersion(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg-query")
	}
	const tarball = "/usr/src/linux-source-6.1.tar.xz"
	if _, err := os.Stat(tarball); err != nil {
		t.Skipf("%s: %v", tarball, err)
	}
	src, err := OpenSource(tarball)
	must(t, err)
	// What dpkg says is installed, whichever version that is.
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}\t${source:Package}\t${source:Version}", "linux-source-6.1").Output()
	if err != nil {
		t.Fatalf("dpkg-query linux-source-6.1: %v", err)
	}
	f := strings.Split(string(out), "\t")
	if len(f) != 3 || !strings.HasPrefix(f[0], "6.1.") || f[1] != "linux" {
		t.Fatalf("dpkg-query linux-source-6.1: %q", out)
	}
	t.Logf("linux-source-6.1 %s, of the source package %s %s", f[0], f[1], f[2])
	if src.Version != f[0] {
		t.Errorf("Version %q, want the linux-source-6.1 package's %q", src.Version, f[0])
	}
	if want := "https://sources.debian.org/src/linux/" + f[2] + "/"; src.URLBase != want {
		t.Errorf("URLBase %q, want %q", src.URLBase, want)
	}
}
