"""The interpolated modified Kneser-Ney character n-gram model: scoring, counting, files."""
