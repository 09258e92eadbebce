package proxy

import "sort"

// patchLines reads a custom tool call's freeform input, such as the patch of an
// apply_patch call ("*** Begin Patch", "*** Add File: a.c", then "+int main..."),
// as code: the '+' or '-' that begins a line of a patch is dropped, so that a file
// written as added lines tokenizes as the file does. Other text passes unchanged
// (a line of code seldom begins with either). Offsets map back as jsonStrings'
// do.
type patchLines struct {
	raw, dec int
	midLine  bool // the last byte was not a line end
	cps      []checkpoint
}

func (p *patchLines) feed(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		p.raw++
		if !p.midLine && (c == '+' || c == '-') {
			p.cps = append(p.cps, checkpoint{p.dec, p.raw})
			p.midLine = true
			continue
		}
		out = append(out, c)
		p.dec++
		p.midLine = c != '\n' && c != '\r'
	}
	return out
}

// rawOffset returns the offset in the input of decoded offset d.
func (p *patchLines) rawOffset(d int) int {
	i := sort.Search(len(p.cps), func(i int) bool { return p.cps[i].dec > d }) - 1
	if i < 0 {
		return min(d, p.raw)
	}
	return min(p.cps[i].raw+d-p.cps[i].dec, p.raw)
}
