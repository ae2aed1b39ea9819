"""rnnlens: train character-level recurrent language models and look inside them."""

__version__ = "0.1.0"
