# Local Kubernetes cluster for tests and for running the exchange (scripts/cluster/, no Docker
# needed): etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1,
# and a real node (containerd, kubelet, kube-proxy, CoreDNS; CEX_REAL_NODE=false leaves it out).

.PHONY: cluster-install cluster-up cluster-down cluster-status

cluster-install: ## Build/cache the Kubernetes binaries, kwok, helm, CoreDNS; install etcd, containerd
	@scripts/cluster/install.sh

cluster-up: ## Start the local cluster with its real node (prints `export KUBECONFIG=...`)
	@scripts/cluster/install.sh && scripts/cluster/up.sh

cluster-down: ## Stop the local cluster; fails if the node left anything on the host
	@scripts/cluster/down.sh

cluster-status: ## Show the local cluster's components and nodes
	@scripts/cluster/status.sh
