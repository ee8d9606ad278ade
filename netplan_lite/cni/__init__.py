"""nsnet as a CNI plugin: container runtimes and Kubernetes drive the engine one attachment at a time."""
