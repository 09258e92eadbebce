package license

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"kernel", "kernel/sched/core.c", true},
		{"kernel", "kernelx/core.c", false},
		{"kernel/*.c", "kernel/fork.c", true},
		{"kernel/*.c", "kernel/sched/core.c", false},
		{"**/*.c", "kernel/sched/core.c", true},
		{"**/*.c", "core.c", true},
		{"**/sched", "linux/kernel/sched/core.c", true},
		{"*/kernel", "linux-6.1/kernel/fork.c", true},
		{"./kernel/", "kernel/fork.c", true},
		{"a/**/b", "a/b/c.c", true},
		{"a/**/b", "a/x/y/b/c.c", true},
		{"a/**/b", "a/x/y/c.c", false},
		{"[a-", "a", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.path); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}
