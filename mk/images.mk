# Images the cluster runs, built locally with podman from a cached debootstrap base
# (scripts/images/, no registry): cex, web, kafka, postgres, redis (the
# pod sandbox's pause image is the cluster's: scripts/cluster/install.sh).

.PHONY: images images-import

images: ## Build the images (cached: only what changed is rebuilt); import them if the node is up
	@scripts/images/build.sh
	@if [[ -S "$${CEX_CONTAINERD_ADDRESS:-$${CEX_CLUSTER_DIR:-.cex/cluster}/run/containerd/containerd.sock}" ]]; then scripts/images/import.sh; fi

images-import: ## Import the built images into the node's containerd
	@scripts/images/import.sh
