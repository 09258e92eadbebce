package proxy

import (
	"encoding/json"
	"os"
	"sync"
	"time"
)

// An auditRecord is one line of the audit log: a match and what was done about it.
// It never holds the prompt, the output or the API key.
type auditRecord struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Model     string    `json:"model,omitempty"`
	Endpoint  string    `json:"endpoint"`
	Choice    int       `json:"choice"`
	citation            // action, license, repo, path, lines, tokens, url, version
}

// auditLog appends JSON lines to a file, or to stdout.
type auditLog struct {
	mu  sync.Mutex
	f   *os.File
	own bool
}

func openAudit(path string) (*auditLog, error) {
	if path == "" || path == "-" {
		return &auditLog{f: os.Stdout}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &auditLog{f: f, own: true}, nil
}

func (a *auditLog) write(r auditRecord) {
	b, _ := json.Marshal(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.f.Write(append(b, '\n'))
}

func (a *auditLog) close() {
	if a.own {
		a.f.Close()
	}
}
