"""render layer of nsnet."""
