"""Dagster definitions, one module per concern, loaded by `definitions.py` with `load_from_defs_folder`."""
