// The kubelet side of kubelet-dm: kubelet's real device manager (devicemanager.ManagerImpl of the
// pinned k8s.io/kubernetes) and the few pieces of kubelet around it that a device plugin can
// observe: the active pods list, pod admission, node capacity and a kubelet restart.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	cadvisorapi "github.com/google/cadvisor/lib/model"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
)

// kubelet owns one ManagerImpl at a time (a restart replaces it) and the pods it considers active.
type kubelet struct {
	dir     string
	logger  klog.Logger
	manager *devicemanager.ManagerImpl
	// active is what the ActivePodsFunc given to Start returns: the admitted pods not yet
	// removed. Every access happens on the command loop's goroutine or inside a manager call
	// made from it, so it needs no lock.
	active []*v1.Pod
}

// allReady is config.SourcesReady with every pod source seen: the manager may then garbage-collect
// the devices of pods that are no longer active, as a kubelet does once it has synced.
type allReady struct{}

func (allReady) AddSource(string) {}
func (allReady) AllReady() bool   { return true }

func newKubelet(logger klog.Logger, dir string) (*kubelet, error) {
	k := &kubelet{dir: dir, logger: logger}
	if err := k.start(); err != nil {
		return nil, err
	}
	return k, nil
}

// start creates a ManagerImpl on DIR/kubelet.sock and starts it, as kubelet's container manager
// does: Start reads the checkpoint in DIR, removes every other socket there (the plugins must
// notice and register again) and serves the Registration service.
func (k *kubelet) start() error {
	// One NUMA node; the topology manager of kubelet's default policy, "none".
	topology := []cadvisorapi.Node{{Id: 0}}
	store, err := topologymanager.NewManager(k.logger, topology, topologymanager.PolicyNone, topologymanager.ContainerTopologyScope, nil)
	if err != nil {
		return fmt.Errorf("topology manager: %w", err)
	}
	socket := filepath.Join(k.dir, filepath.Base(pluginapi.KubeletSocket))
	m, err := newManagerImpl(k.logger, socket, topology, store)
	if err != nil {
		return fmt.Errorf("device manager: %w", err)
	}
	// A restarted kubelet finds no containers of its own (the harness runs none).
	if err := m.Start(k.logger, k.activePods, allReady{}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		return fmt.Errorf("start device manager on %s: %w", socket, err)
	}
	k.manager = m
	return nil
}

func (k *kubelet) activePods() []*v1.Pod { return slices.Clone(k.active) }

// stop stops the Registration service and disconnects every plugin.
func (k *kubelet) stop() error {
	if k.manager == nil {
		return nil
	}
	err := k.manager.Stop(k.logger)
	k.manager = nil
	return err
}

// restart is a kubelet restart: a new manager on the same directory, with the same active pods
// (a restarted kubelet lists them again from the API server).
func (k *kubelet) restart() error {
	if err := k.stop(); err != nil {
		return fmt.Errorf("stop device manager: %w", err)
	}
	return k.start()
}

// counts is GetCapacity as kubelet's node status reports it: capacity and allocatable per resource.
func (k *kubelet) counts() (capacity, allocatable map[string]int64) {
	c, a, _ := k.manager.GetCapacity(k.logger)
	capacity, allocatable = map[string]int64{}, map[string]int64{}
	for name, q := range c {
		capacity[string(name)] = q.Value()
	}
	for name, q := range a {
		allocatable[string(name)] = q.Value()
	}
	return capacity, allocatable
}

// admit is the device-plugin part of kubelet's pod admission. kubelet adds the pod to its pod
// manager (so to the active pods) before admitting it, then, with the default topology policy
// "none", calls Allocate for each init container and then each container in that order; a
// rejected pod becomes inactive. (The pod must be active during admission: Allocate of a second
// container frees the devices of pods that are not.) Then the runtime settings of each container,
// as kubelet asks for them when it starts the container.
func (k *kubelet) admit(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf(`admit needs "pod"`)
	}
	pod := &v1.Pod{}
	if err := json.Unmarshal(raw, pod); err != nil {
		return nil, fmt.Errorf("pod is not a v1 Pod: %w", err)
	}
	if pod.UID == "" {
		return nil, fmt.Errorf("pod has no metadata.uid")
	}
	k.dropActive(string(pod.UID))
	k.active = append(k.active, pod)
	ctx := klog.NewContext(context.Background(), k.logger)
	all := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	for i := range all {
		if err := k.manager.Allocate(ctx, pod, &all[i], lifecycle.AddOperation); err != nil {
			k.dropActive(string(pod.UID))
			return nil, err
		}
	}
	containers := map[string]any{}
	for i := range all {
		c := &all[i]
		opts, err := k.manager.GetDeviceRunContainerOptions(ctx, pod, c)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		containers[c.Name] = k.runOptions(string(pod.UID), c.Name, opts)
	}
	return containers, nil
}

// remove is a pod that terminated: it leaves the active pods, and its devices are freed as
// kubelet's pod-resources List does (kubelet otherwise frees them at the next Allocate).
func (k *kubelet) remove(uid string) {
	k.dropActive(uid)
	k.manager.UpdateAllocatedDevices(k.logger)
}

func (k *kubelet) dropActive(uid string) {
	k.active = slices.DeleteFunc(k.active, func(p *v1.Pod) bool { return string(p.UID) == uid })
}

// runOptions is one container's DeviceRunContainerOptions in the reply's shape, with the device
// IDs the manager recorded for it; empty collections rather than nulls.
func (k *kubelet) runOptions(podUID, name string, opts *devicemanager.DeviceRunContainerOptions) map[string]any {
	envs, annotations := map[string]string{}, map[string]string{}
	devices, mounts, cdi := []map[string]any{}, []map[string]any{}, []string{}
	if opts != nil {
		for _, e := range opts.Envs {
			envs[e.Name] = e.Value
		}
		for _, d := range opts.Devices {
			devices = append(devices, map[string]any{"host": d.PathOnHost, "container": d.PathInContainer, "permissions": d.Permissions})
		}
		for _, m := range opts.Mounts {
			mounts = append(mounts, map[string]any{"host": m.HostPath, "container": m.ContainerPath, "read_only": m.ReadOnly})
		}
		for _, a := range opts.Annotations {
			annotations[a.Name] = a.Value
		}
		for _, c := range opts.CDIDevices {
			cdi = append(cdi, c.Name)
		}
	}
	ids := map[string][]string{}
	for resource, devs := range k.manager.GetDevices(podUID, name) {
		list := make([]string, 0, len(devs))
		for id := range devs {
			list = append(list, id)
		}
		sort.Strings(list)
		ids[resource] = list
	}
	return map[string]any{
		"envs": envs, "devices": devices, "mounts": mounts, "annotations": annotations,
		"cdi_devices": cdi, "device_ids": ids,
	}
}
