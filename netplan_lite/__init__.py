"""nsnet: declarative reconciler for Linux network-namespace topologies."""

__version__ = "0.1.0"
