"""How tests compare a warehouse's contents across two builds: a DOUBLE to 9 decimals, because
DuckDB's parallel sums add rows in the order its threads reach them, so one build may differ
from the next in the last bit (not a different result)."""


def comparable(column: str, data_type: str) -> str:
    """The SQL expression that selects `column` for comparison."""
    return f'round("{column}", 9)' if data_type in ("DOUBLE", "FLOAT") else f'"{column}"'
