// Package license is cleanroom's license vocabulary: SPDX license expressions
// (parsed, classified as permissive, unknown, weak or strong copyleft, evaluated
// under a policy), the indexing policy that says which classes and licenses get
// indexed, and the path patterns that policies use.
//
// It is apart from package corpus, which detects licenses, so that the proxy can
// judge licenses without linking the license detector: the detector's database
// costs half a second and 60 MB at start-up.
package license
