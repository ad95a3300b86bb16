// Command spdy-client runs one Kubernetes exec session with client-go's SPDY executor
// (the code kubectl and the API server use) against a given URL and prints what it got
// as one JSON line: the interop check of the gateway's SPDY/remote-command modules.
//
// Usage: spdy-client <exec URL> exec|tty
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// Result is what the Rust test asserts on.
type Result struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error"`
}

// oneResize reports a single terminal size, then ends resize monitoring.
type oneResize struct{ sent bool }

func (q *oneResize) Next() *remotecommand.TerminalSize {
	if q.sent {
		return nil
	}
	q.sent = true
	return &remotecommand.TerminalSize{Width: 80, Height: 24}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: spdy-client <exec URL> exec|tty")
		os.Exit(2)
	}
	target, err := url.Parse(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	config := &rest.Config{Host: target.Scheme + "://" + target.Host}
	executor, err := remotecommand.NewSPDYExecutor(config, "POST", target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var stdout, stderr bytes.Buffer
	options := remotecommand.StreamOptions{
		Stdin:  strings.NewReader("hello from stdin\n"),
		Stdout: &stdout,
	}
	if os.Args[2] == "tty" {
		options.Tty = true
		options.TerminalSizeQueue = &oneResize{}
	} else {
		options.Stderr = &stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = executor.StreamWithContext(ctx, options)
	result := Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: -1}
	if err == nil {
		result.ExitCode = 0
	} else {
		result.Error = err.Error()
		var exitErr exec.CodeExitError
		if errors.As(err, &exitErr) {
			result.ExitCode = exitErr.Code
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		os.Exit(2)
	}
}
