# Local Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager) for the
# e2e tests and the demo. Included by the top-level Makefile, which defines VENV, BIN and
# the `venv-demo` target. Details: tests/tooling/cluster/README.md.
#
#   make tools          build the pinned binaries once per machine (cached in ~/.cache/shards)
#   make cluster-up     start on loopback, write .cluster/kubeconfig, return once /readyz is ok
#   make cluster-up NODE=1
#                       also one node (containerd + kubelet + kube-scheduler + kube-proxy from
#                       Debian packages and the pinned module; needs root), so Pods really run;
#                       returns once the Node is Ready: about 9.5 s with everything cached
#                       (node part 1.3-1.9 s). First time adds apt-get (about 15-35 s), the Go
#                       build of kubelet/scheduler/kube-proxy (2.5 min with a warm Go cache)
#                       and the pause image (0.1 s). One node per machine; SHARDS_CLUSTER_NODE=1
#                       does the same as NODE=1.
#   make cluster-down   stop exactly the processes cluster-up started, undo every host change
#                       the node recorded (links, iptables, mounts, cgroups, sysctls) and
#                       delete .cluster/
#   make cluster-status print the state as JSON (exit 3 when not running)

CLUSTER_CLI = PYTHONPATH=tests $(BIN)/python -m tooling.cluster

.PHONY: tools cluster-up cluster-down cluster-status

tools: venv-demo
	$(CLUSTER_CLI) tools

NODE ?=

cluster-up: venv-demo
	$(CLUSTER_CLI) up $(if $(filter-out 0,$(NODE)),--node)

cluster-down: venv-demo
	$(CLUSTER_CLI) down

cluster-status: venv-demo
	$(CLUSTER_CLI) status
