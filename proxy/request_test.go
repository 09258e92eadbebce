package proxy

import (
	"testing"

	"cleanroom/fingerprint"
)

// TestPromptLang: a completion of code goes on in the code's language; one of a
// prompt in words is read as markdown, as a model answers it like a chat.
func TestPromptLang(t *testing.T) {
	for _, tc := range []struct {
		prompt string
		want   fingerprint.Lang
	}{
		{"passage 34", fingerprint.Markdown},
		{"Write a function that sorts a list of names.", fingerprint.Markdown},
		{"", fingerprint.Markdown},
		{"int main(void) {\n\treturn 0;", fingerprint.C},
		{"package main\n\nfunc add(a, b int) int {", fingerprint.Go},
		{"(defun my-next-line ()\n  (interactive)", fingerprint.EmacsLisp},
		{"Explain:\n\n```c\nint x;\n```\n", fingerprint.Markdown},
	} {
		if got := promptLang(tc.prompt); got != tc.want {
			t.Errorf("promptLang(%q) = %v, want %v", tc.prompt, got, tc.want)
		}
	}
}
