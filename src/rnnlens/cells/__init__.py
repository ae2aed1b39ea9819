"""Interpretable cells: text features, automatic discovery, drawings of cells over text."""
