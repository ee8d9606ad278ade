"""model layer of nsnet."""
