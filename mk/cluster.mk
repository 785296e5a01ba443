# Local Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager) for the
# e2e tests and the demo. Included by the top-level Makefile, which defines VENV, BIN and
# the `venv` target. Details: tests/tooling/cluster/README.md.
#
#   make tools          build the pinned binaries once per machine (cached in ~/.cache/shards)
#   make cluster-up     start on loopback, write .cluster/kubeconfig, return once /readyz is ok
#   make cluster-down   stop exactly the processes cluster-up started and delete .cluster/
#   make cluster-status print the state as JSON (exit 3 when not running)

CLUSTER_CLI = PYTHONPATH=tests $(BIN)/python -m tooling.cluster

.PHONY: tools cluster-up cluster-down cluster-status

tools: venv
	$(CLUSTER_CLI) tools

cluster-up: venv
	$(CLUSTER_CLI) up

cluster-down: venv
	$(CLUSTER_CLI) down

cluster-status: venv
	$(CLUSTER_CLI) status
