// Package corpus reads the sources that cleanroom indexes and decides their licenses.
//
// A Source is a directory, an archive (tar, tar.gz, tar.xz, tar.zst, tar.bz2, zip)
// read in place, or a single file, possibly compressed (Debian ships Emacs' Lisp as
// *.el.gz). Walk hands every file in a served language to a visitor and counts the
// others by reason (the Skip* constants); it follows no link and reads no archive
// entry that would escape the source. License files go to Repos, which decides after
// the walk which directory is a repository root and, with go-license-detector, what
// its license is. FileLicense reads the license a file states about itself (an SPDX
// line or a notice). Package license classifies SPDX expressions into permissive,
// unknown, weak or strong, and its Policy says which of them get indexed.
//
// The skip rules were measured on linux-source-6.1.tar.xz (55,405 .c and .h files):
// the generated-code markers take 462 (register headers of habanalabs, omap2 and
// msm, Unicode tables), the 1 MiB limit 83 (amdgpu register headers, crypto/testmgr.h),
// the binary, minified and vendor rules none. 85% of those files carry an SPDX line
// and 12% a notice that FileLicense knows; 97% of Emacs' .el files and 74% of glibc's
// .c files carry a notice. Walking the kernel archive takes some 20 s on one core,
// most of it xz decompression.
package corpus
