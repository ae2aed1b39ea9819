"""``rnnlens reproduce``: the paper's experiments end to end (plan, executor, stages, report).

See docs/reproduce.md. ``reproduce(...)`` is the library entry point; the CLI is commands/reproduce.py.
"""

from __future__ import annotations

from .plan import PRESETS, Preset, Stage, build_plan, get_preset, parse_datasets
from .runner import reproduce
from .schedule import Schedule, critical_path, simulate

__all__ = ["PRESETS", "Preset", "Schedule", "Stage", "build_plan", "critical_path", "get_preset", "parse_datasets",
           "reproduce", "simulate"]
