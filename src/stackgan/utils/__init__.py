"""Seeding, device and AMP selection, image grids."""
