"""End-to-end tests on a real local Kubernetes control plane (scripts/cluster/)."""
