"""engine layer of nsnet."""
