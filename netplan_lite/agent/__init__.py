"""agent layer of nsnet."""
