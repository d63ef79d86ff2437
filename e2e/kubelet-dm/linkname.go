// The one way kubelet-dm reaches into kubelet's device manager: its unexported constructor, so the
// Registration socket (and with it the plugin directory and the checkpoint) can live in a
// directory of the harness's choosing.
//
// devicemanager.NewManagerImpl hard-codes /var/lib/kubelet/device-plugins/kubelet.sock
// (pluginapi.KubeletSocket) and only forwards to newManagerImpl(logger, socketPath, ...), which is
// what the package's own unit tests call. Nothing of kubelet's code is patched or copied; the
// symbol is pulled with //go:linkname. Two alternatives do not work or are worse: `go build
// -overlay` refuses to add a file under GOMODCACHE, and a copy of the package would run a copy.
//
// A linkname is not type-checked: a changed signature upstream would corrupt memory at run time.
// e2e/build-deps therefore checks, before building, that the pinned manager.go declares
// newManagerImpl with exactly the parameters below (the line after the directive, with
// "*devicemanager." dropped); keep this declaration on one line for that check.

package main

import (
	_ "unsafe" // for go:linkname

	cadvisorapi "github.com/google/cadvisor/lib/model"
	"k8s.io/klog/v2"

	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
)

//go:linkname newManagerImpl k8s.io/kubernetes/pkg/kubelet/cm/devicemanager.newManagerImpl
func newManagerImpl(logger klog.Logger, socketPath string, topology []cadvisorapi.Node, topologyAffinityStore topologymanager.Store) (*devicemanager.ManagerImpl, error)
