"""Zarr stores: the atomic, sealed store mechanics and tables, and one module per store kind."""
