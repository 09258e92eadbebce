//go:build !race

package corpus

// raceEnabled is true when the race detector is on: corpus-sized tests skip then, as
// it makes them take minutes.
const raceEnabled = false
