"""Cleargro data platform."""
