"""Datasets: the embedded `shapes` renderer and the CUB-layout loader."""
