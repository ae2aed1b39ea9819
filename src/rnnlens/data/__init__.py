"""Text and corpora: symbols and vocabularies, splits, the named corpora and their downloads, character classes."""
