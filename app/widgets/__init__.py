"""Painted console controls, meters and the EQ section."""
