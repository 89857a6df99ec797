"""Sensors of the code location, one module each."""
