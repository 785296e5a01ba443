"""`kubectl shards`: a kubectl plugin (the `kubectl-shards` program on PATH) for people whose
access is their kubeconfig. Reads go to the operator's log service with the user's own token,
and Kubernetes RBAC decides what they may read: no MongoDB credentials, no shared token."""
