"""kernel layer of nsnet."""
