"""Capturing every hidden state, cell state and gate, in memory or on disk, proven equal to the fused path."""
