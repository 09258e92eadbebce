package corpus

import (
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/go-enry/go-license-detector/v4/licensedb"
	"github.com/go-enry/go-license-detector/v4/licensedb/filer"
)

// A Repo is a directory of a source that holds license files, and so a project of its
// own: a repository root. The source's base directory is always a Repo, with or without
// license files.
type Repo struct {
	// Root is the directory, a slash path relative to the source root. It is "" for the
	// source root, or the single top directory when the source holds only that
	// ("linux-source-6.1" in linux-source-6.1.tar.xz).
	Root string
	// Name is the source's name for the base repository, Root itself for the others.
	Name string
	// License is the SPDX expression that the license files say, "" when they say
	// nothing that Detect recognises. It is set by Detect.
	License string
	// Confidence is the lowest confidence, from 0 to 1, among the licenses in License.
	Confidence float32
	// LicenseFiles are the base names of the files that decided License, sorted.
	LicenseFiles []string

	texts map[string][]byte // license files by base name
}

// Repos collects the license files of a source during a Walk and decides, after it,
// which repository each file belongs to and what its license is. Its methods are safe
// for concurrent use.
type Repos struct {
	src *Source

	mu    sync.RWMutex
	repos map[string]*Repo // by Root; the base joins on first use after the Walk
	top   string           // the single top directory seen so far
	multi bool             // the root holds files, or more than one directory
	base  *Repo
}

// NewRepos returns an empty Repos for src; pass it to Walk.
func NewRepos(src *Source) *Repos {
	return &Repos{src: src, repos: make(map[string]*Repo)}
}

// see records a path of the source, to find out whether it has a single top directory.
func (r *Repos) see(p string, isDir bool) {
	top, _, nested := strings.Cut(p, "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.multi:
	case !nested && !isDir:
		r.multi = true // a file in the root
	case r.top == "":
		r.top = top
	case r.top != top:
		r.multi = true
	}
}

// addLicense records the license file at slash path p.
func (r *Repos) addLicense(p string, data []byte) {
	dir, name := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	repo := r.repos[dir]
	if repo == nil {
		repo = &Repo{Root: dir, Name: dir, texts: make(map[string][]byte)}
		r.repos[dir] = repo
	}
	repo.texts[name] = data
}

// baseLocked returns the base repository, creating it on first use.
func (r *Repos) baseLocked() *Repo {
	if r.base != nil {
		return r.base
	}
	root := ""
	if !r.multi {
		root = r.top
	}
	b := r.repos[root]
	if b == nil {
		b = &Repo{Root: root}
		r.repos[root] = b
	}
	b.Name = r.src.Name
	r.base = b
	return b
}

// For returns the repository of the file at slash path p: the nearest directory above
// it that holds a license file, else the base repository. Call it after the Walk.
func (r *Repos) For(p string) *Repo {
	r.mu.RLock()
	base := r.base
	if base != nil {
		for dir := path.Dir(p); dir != "." && dir != "/" && dir != ""; dir = path.Dir(dir) {
			if repo := r.repos[dir]; repo != nil {
				r.mu.RUnlock()
				return repo
			}
		}
		r.mu.RUnlock()
		return base
	}
	r.mu.RUnlock()
	r.mu.Lock()
	r.baseLocked()
	r.mu.Unlock()
	return r.For(p)
}

// All returns every repository, the base first, then by Root.
func (r *Repos) All() []*Repo {
	r.mu.Lock()
	defer r.mu.Unlock()
	base := r.baseLocked()
	all := make([]*Repo, 0, len(r.repos))
	for _, repo := range r.repos {
		if repo != base {
			all = append(all, repo)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Root < all[j].Root })
	return append([]*Repo{base}, all...)
}

// PreloadLicenseDB loads go-license-detector's database of license texts, which the
// first Detect would otherwise load: some 3 s of CPU. A build calls it in the
// background as it starts, so that the load overlaps the walk.
func PreloadLicenseDB() { licensedb.Preload() }

// Detect decides the license of every repository from its license files, using
// several goroutines. Call it once, after the Walk and before For. See detectLicense
// for how several files and matches combine. A repository whose files say nothing
// recognisable keeps License ""; that is not an error, and Detect returns nil today.
func (r *Repos) Detect() error {
	repos := r.All()
	work := make(chan *Repo)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(repos)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for repo := range work {
				if len(repo.texts) > 0 {
					repo.License, repo.Confidence, repo.LicenseFiles = detectLicense(repo.texts)
				}
			}
		}()
	}
	for _, repo := range repos {
		work <- repo
	}
	close(work)
	wg.Wait()
	return nil
}

// memFiler is a filer.Filer over license files held in memory, all in one directory.
type memFiler map[string][]byte

func (m memFiler) ReadFile(p string) ([]byte, error) {
	if data, ok := m[p]; ok {
		return data, nil
	}
	return nil, &os.PathError{Op: "read", Path: p, Err: os.ErrNotExist}
}

func (m memFiler) ReadDir(p string) ([]filer.File, error) {
	if p != "" {
		return nil, &os.PathError{Op: "readdir", Path: p, Err: os.ErrNotExist}
	}
	files := make([]filer.File, 0, len(m))
	for name := range m {
		files = append(files, filer.File{Name: name})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

func (memFiler) Close()                    {}
func (memFiler) PathsAreAlwaysSlash() bool { return true }

var _ filer.Filer = memFiler(nil)

// detectLicense runs the license detector over the license files of one directory.
func detectLicense(texts map[string][]byte) (string, float32, []string) {
	matches, err := licensedb.Detect(memFiler(texts))
	if err != nil {
		matches = nil // licensedb.ErrNoLicenseFound: the notices below may still know
	}
	perFile := make(map[string]map[string]float32)
	for id, m := range matches {
		for file, conf := range m.Files {
			if perFile[file] == nil {
				perFile[file] = make(map[string]float32)
			}
			perFile[file][id] = conf
		}
	}
	var found []detected
	for name, data := range texts {
		d, ok := pickMatch(perFile[name])
		if !ok || d.conf < sureConfidence {
			if stated, isStated := statedLicense(data); isStated {
				d, ok = stated, true
			}
		}
		if ok {
			d.file = name
			found = append(found, d)
		}
	}
	return combineLicenses(found)
}

// statedLicense returns the license that a license file states in words, as a file
// would (see FileLicense): an SPDX line, which the kernel's COPYING has, or, in a file
// short enough to be a notice, a notice (fs/jffs2/LICENCE). Long files that the
// detector does not know are usually several licenses in a row, whose words would mislead.
func statedLicense(data []byte) (detected, bool) {
	if expr := spdxLine(data); expr != "" {
		return detected{id: expr, conf: 1}, true
	}
	if len(data) > maxNoticeFile {
		return detected{}, false
	}
	if expr := noticeLicense(data); expr != "" {
		return detected{id: expr, conf: noticeConfidence}, true
	}
	return detected{}, false
}
