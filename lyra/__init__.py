"""Lyra: a notebook-centric research and paper-trading workbench for crypto markets."""

__version__ = "0.1.0"
__all__ = ["__version__"]
