"""resources layer of nsnet."""
