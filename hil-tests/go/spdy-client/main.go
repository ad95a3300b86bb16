// Command spdy-client runs one Kubernetes exec session with client-go's SPDY executor,
// or one port-forwarded connection with client-go's port forwarder (the code kubectl and
// the API server use), against a given URL and prints what it got as one JSON line: the
// interop check of the gateway's SPDY, remote-command and port-forward modules.
//
// Usage: spdy-client <exec URL> exec|tty|ws   (ws: client-go's WebSocket executor, v5)
//
//	spdy-client <portForward URL> portforward
//
// With SPDY_CLIENT_CERT and SPDY_CLIENT_KEY set, an https URL is dialled with that client
// certificate (and without verifying the server's).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
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
		fmt.Fprintln(os.Stderr, "usage: spdy-client <URL> exec|tty|ws|portforward")
		os.Exit(2)
	}
	target, err := url.Parse(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	config := &rest.Config{Host: target.Scheme + "://" + target.Host}
	// For an HTTPS kubelet endpoint: a client certificate, the server's not verified
	// (as kube-apiserver without --kubelet-certificate-authority).
	if cert := os.Getenv("SPDY_CLIENT_CERT"); cert != "" {
		config.TLSClientConfig = rest.TLSClientConfig{
			CertFile: cert,
			KeyFile:  os.Getenv("SPDY_CLIENT_KEY"),
			Insecure: true,
		}
	}
	if os.Args[2] == "portforward" {
		printResult(portForward(config, target))
		return
	}
	var executor remotecommand.Executor
	if os.Args[2] == "ws" {
		executor, err = remotecommand.NewWebSocketExecutor(config, "GET", target.String())
	} else {
		executor, err = remotecommand.NewSPDYExecutor(config, "POST", target)
	}
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
	printResult(result)
}

func printResult(result Result) {
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		os.Exit(2)
	}
}

// portForward forwards a local port to remote port 8080 (or SPDY_CLIENT_REMOTE_PORT), sends a line through it,
// half-closes and returns what came back as Stdout.
func portForward(config *rest.Config, target *url.URL) Result {
	fail := func(err error) Result { return Result{ExitCode: -1, Error: err.Error()} }
	transport, upgrader, err := spdy.RoundTripperFor(config)
	if err != nil {
		return fail(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", target)
	stop, ready := make(chan struct{}), make(chan struct{})
	var logs bytes.Buffer
	remote := "8080"
	if p := os.Getenv("SPDY_CLIENT_REMOTE_PORT"); p != "" {
		remote = p
	}
	forwarder, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + remote}, stop, ready, io.Discard, &logs)
	if err != nil {
		return fail(err)
	}
	done := make(chan error, 1)
	go func() { done <- forwarder.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		return fail(fmt.Errorf("forwarding ended early: %v", err))
	case <-time.After(20 * time.Second):
		return fail(errors.New("forwarder not ready"))
	}
	ports, err := forwarder.GetPorts()
	if err != nil {
		return fail(err)
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
	if err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte("ping through the tunnel\n")); err != nil {
		return fail(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	echoed, err := io.ReadAll(conn)
	conn.Close()
	close(stop)
	result := Result{Stdout: string(echoed), Stderr: logs.String()}
	if err != nil {
		result.Error = err.Error()
	}
	if err := <-done; err != nil && result.Error == "" {
		result.Error = err.Error()
	}
	return result
}
