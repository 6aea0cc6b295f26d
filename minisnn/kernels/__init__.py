"""Numba-jitted inner loops: the only places where the engine loops over elements."""
