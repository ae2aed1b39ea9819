"""Analyses of a trained model: gate saturation, comparisons with baselines, errors by oracles, their figures."""
