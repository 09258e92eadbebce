package proxy

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

// rawOffset returns the offset in the input of decoded offset d: before the first
// dropped marker the two are one.
func (p *patchLines) rawOffset(d int) int { return checkpointOffset(p.cps, d, p.raw, d) }
