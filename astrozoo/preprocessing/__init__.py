"""Preprocessing between the input pipeline (`astrozoo.io`) and the network."""

from .normalize import PRESETS, normalize

__all__ = ["PRESETS", "normalize"]
