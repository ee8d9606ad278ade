"""cli layer of nsnet."""
