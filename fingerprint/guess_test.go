package fingerprint

import "testing"

func TestGuess(t *testing.T) {
	for _, tt := range []struct {
		text string
		want Lang
	}{
		{"Here:\n```c\nint x;\n```\n", Markdown},
		{"<?php echo $x;", PHP},
		{"(defun foo (x)\n  (+ x 1))", EmacsLisp},
		{"#!/bin/bash\necho hi\n", Shell},
		{"def foo(x):\n    return x\n", Python},
		{"package main\n\nfunc main() {}\n", Go},
		{"fn main() {\n    let mut x = 1;\n}", Rust},
		{"const x = require('y');\n", JavaScript},
		{"static int foo(void)\n{\n\treturn 0;\n}\n", C},
		{"  \n", Text},
	} {
		if got := Guess([]byte(tt.text)); got != tt.want {
			t.Errorf("Guess(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
}
