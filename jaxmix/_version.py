"""The package version (its own module, so that ``jaxmix.io`` can read it
without importing the package it belongs to)."""

__version__ = "0.1.0"
