# The whole exchange on the local one-node Kubernetes cluster (scripts/images/k8s-up.sh):
# cluster + real node, images, helm install of charts/cex (devInfra, operator, every
# service, the web UI), the example Markets.

.PHONY: k8s-up k8s-down

k8s-up: ## Run the exchange on the local cluster's real node; returns once every Market is Ready
	@scripts/images/k8s-up.sh

k8s-down: ## Uninstall the exchange and stop the local cluster
	@scripts/images/k8s-down.sh
