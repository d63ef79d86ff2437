// kubelet-dm: a test harness that runs kubelet's real device manager (ManagerImpl from
// k8s.io/kubernetes/pkg/kubelet/cm/devicemanager, the pinned version) on a directory of its own,
// so a device plugin under test is registered, listed, allocated and restarted by kubelet's own
// code. Built by e2e/build-deps; driven by e2e/src/kubelet_dm.rs.
//
// Usage: kubelet-dm --dir DIR [-v N]   |   kubelet-dm --version
//
// DIR is the device-plugins directory: the Registration service is on DIR/kubelet.sock and the
// checkpoint is in DIR. Commands are JSON objects, one per line on stdin; each gets exactly one
// JSON reply line on stdout ({"ok":true,...} or {"ok":false,"error":"..."}). Logs go to stderr.
//
//	{"op":"wait","resource":R,"allocatable":N,"timeout_ms":T}  poll GetCapacity until R's allocatable is N
//	{"op":"capacity"}                                          GetCapacity
//	{"op":"admit","pod":POD}                                   Allocate each container, then its run options
//	{"op":"remove","uid":U}                                    the pod terminated: no longer active
//	{"op":"restart"}                                           Stop, then a new manager on DIR (kubelet restart)
//	{"op":"quit"}                                              Stop and exit 0 (so does EOF on stdin)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
)

// pollEvery is how often "wait" asks GetCapacity: fast next to a plugin's ListAndWatch updates,
// cheap next to a test's timeouts.
const pollEvery = 50 * time.Millisecond

// defaultWait is the timeout of a "wait" that gives none.
const defaultWait = 10 * time.Second

type command struct {
	Op          string          `json:"op"`
	Resource    string          `json:"resource"`
	Allocatable *int64          `json:"allocatable"`
	TimeoutMS   *int64          `json:"timeout_ms"`
	Pod         json.RawMessage `json:"pod"`
	UID         *string         `json:"uid"`
}

type reply map[string]any

func failed(err error) reply { return reply{"ok": false, "error": err.Error()} }

func main() {
	klog.InitFlags(nil)
	// klog's default is everything at level 0; 2 shows registrations, connects and manager starts.
	_ = flag.Set("v", "2")
	dir := flag.String("dir", "", "device-plugins directory: kubelet.sock and the checkpoint go here")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	// The Kubernetes version the device manager comes from, stamped by e2e/build-deps.
	if *showVersion {
		fmt.Printf("kubelet-dm %s\n", version.Get().GitVersion)
		return
	}
	if *dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: kubelet-dm --dir DIR [-v N] (commands on stdin, see the source)")
		os.Exit(2)
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		klog.ErrorS(err, "cannot create the device-plugins directory", "dir", *dir)
		os.Exit(1)
	}
	logger := klog.Background()
	k, err := newKubelet(logger, *dir)
	if err != nil {
		klog.ErrorS(err, "cannot start the device manager")
		klog.Flush()
		os.Exit(1)
	}
	logger.Info("kubelet-dm ready", "dir", *dir, "version", version.Get().GitVersion)

	// A signal kills the harness as it would kill kubelet: kubelet.sock stays behind, and the
	// next manager's Start removes it with the other sockets of DIR.
	code := serve(k, os.Stdin, os.Stdout)
	if err := k.stop(); err != nil {
		klog.ErrorS(err, "stopping the device manager")
	}
	klog.Flush()
	os.Exit(code)
}

// serve answers commands until "quit" or EOF; its exit code is 0 unless stdin or stdout fail.
func serve(k *kubelet, in io.Reader, out io.Writer) int {
	r := bufio.NewReader(in)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			rep, quit := handle(k, line)
			if encErr := enc.Encode(rep); encErr != nil {
				klog.ErrorS(encErr, "cannot encode the reply")
				return 1
			}
			if flushErr := w.Flush(); flushErr != nil {
				klog.ErrorS(flushErr, "cannot write the reply")
				return 1
			}
			if quit {
				return 0
			}
		}
		if errors.Is(err, io.EOF) {
			return 0
		}
		if err != nil {
			klog.ErrorS(err, "cannot read stdin")
			return 1
		}
	}
}

// handle runs one command line; quit is true for "quit". A panic inside kubelet's code becomes an
// error reply, so one bad command never kills the harness mid-test.
func handle(k *kubelet, line []byte) (rep reply, quit bool) {
	defer func() {
		if p := recover(); p != nil {
			klog.ErrorS(nil, "command panicked", "panic", p)
			rep, quit = failed(fmt.Errorf("command panicked: %v", p)), false
		}
	}()
	var cmd command
	if err := json.Unmarshal(line, &cmd); err != nil {
		return failed(fmt.Errorf("malformed command: %w", err)), false
	}
	switch cmd.Op {
	case "wait":
		return wait(k, &cmd), false
	case "capacity":
		capacity, allocatable := k.counts()
		return reply{"ok": true, "capacity": capacity, "allocatable": allocatable}, false
	case "admit":
		containers, err := k.admit(cmd.Pod)
		if err != nil {
			return failed(err), false
		}
		return reply{"ok": true, "containers": containers}, false
	case "remove":
		if cmd.UID == nil || *cmd.UID == "" {
			return failed(errors.New(`remove needs "uid"`)), false
		}
		k.remove(*cmd.UID)
		return reply{"ok": true}, false
	case "restart":
		if err := k.restart(); err != nil {
			return failed(err), false
		}
		return reply{"ok": true}, false
	case "quit":
		if err := k.stop(); err != nil {
			return failed(err), true
		}
		return reply{"ok": true}, true
	case "":
		return failed(errors.New(`command has no "op"`)), false
	default:
		return failed(fmt.Errorf("unknown op %q (wait, capacity, admit, remove, restart, quit)", cmd.Op)), false
	}
}

// wait polls GetCapacity until the resource's allocatable count is the one asked for.
func wait(k *kubelet, cmd *command) reply {
	if cmd.Resource == "" || cmd.Allocatable == nil {
		return failed(errors.New(`wait needs "resource" and "allocatable"`))
	}
	timeout := defaultWait
	if cmd.TimeoutMS != nil {
		if *cmd.TimeoutMS < 0 {
			return failed(errors.New(`"timeout_ms" must not be negative`))
		}
		timeout = time.Duration(*cmd.TimeoutMS) * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for {
		capacity, allocatable := k.counts()
		have := allocatable[cmd.Resource]
		if have == *cmd.Allocatable {
			return reply{"ok": true, "capacity": capacity, "allocatable": allocatable}
		}
		if !time.Now().Before(deadline) {
			return reply{
				"ok": false,
				"error": fmt.Sprintf("timed out after %d ms waiting for %s allocatable %d (have %d)",
					timeout.Milliseconds(), cmd.Resource, *cmd.Allocatable, have),
				"capacity": capacity, "allocatable": allocatable,
			}
		}
		time.Sleep(pollEvery)
	}
}
