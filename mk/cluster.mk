# Local Kubernetes control plane for tests (scripts/cluster/, no Docker needed):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1.

.PHONY: cluster-install cluster-up cluster-down cluster-status

cluster-install: ## Build/cache the Kubernetes binaries, kwok, helm; install etcd
	@scripts/cluster/install.sh

cluster-up: ## Start the local control plane (prints `export KUBECONFIG=...`)
	@scripts/cluster/install.sh && scripts/cluster/up.sh

cluster-down: ## Stop the local control plane
	@scripts/cluster/down.sh

cluster-status: ## Show the local control plane's components
	@scripts/cluster/status.sh
