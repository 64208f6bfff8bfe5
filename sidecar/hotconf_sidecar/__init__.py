"""hotconf-sidecar: verifies signed pushes from the operator and relays them to the pod."""
