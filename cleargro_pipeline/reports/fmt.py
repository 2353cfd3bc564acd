"""Number formats shared by the charts and the template."""

from __future__ import annotations

SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3", "JPY": "\u00a5", "AUD": "A$",
           "CAD": "C$", "NZD": "NZ$", "CHF": "CHF\u00a0", "SEK": "SEK\u00a0", "DKK": "DKK\u00a0",
           "NOK": "NOK\u00a0", "INR": "\u20b9", "BRL": "R$", "MXN": "MX$", "PLN": "PLN\u00a0"}
NA = "n/a"
MINUS = "\u2212"

WINDOW_NAMES = {"current": "This period", "previous": "Previous period",
                "last_year": "Last year"}


def window_name(name: str) -> str:
    return WINDOW_NAMES[name]


def _symbol(currency: str) -> tuple[str, str]:
    if currency in SYMBOLS:
        return SYMBOLS[currency], ""
    return "", f"\u00a0{currency}" if currency else ""


def money(value: float | None, currency: str, decimals: int = 2) -> str:
    if value is None:
        return NA
    prefix, suffix = _symbol(currency)
    sign = MINUS if value < 0 else ""
    return f"{sign}{prefix}{abs(value):,.{decimals}f}{suffix}"


def money_compact(value: float | None, currency: str) -> str:
    """Axis labels: `$12k`, `$1.2M`, `$950`."""
    if value is None:
        return NA
    prefix, suffix = _symbol(currency)
    sign, v = (MINUS if value < 0 else ""), abs(value)
    if v >= 1e6:
        text = f"{v / 1e6:.1f}M".replace(".0M", "M")
    elif v >= 1e3:
        text = f"{v / 1e3:.1f}k".replace(".0k", "k")
    else:
        text = f"{v:.0f}"
    return f"{sign}{prefix}{text}{suffix}"


def money_change(value: float | None, currency: str) -> str:
    if value is None:
        return NA
    return ("+" if value > 0 else "") + money(value, currency, 0)


def count(value: float | None) -> str:
    return NA if value is None else f"{value:,.0f}"


def percent(value: float | None, decimals: int = 2) -> str:
    return NA if value is None else f"{value * 100:.{decimals}f}\u00a0%"


def ratio(value: float | None) -> str:
    return NA if value is None else f"{value:.2f}\u00d7"


def percent_change(value: float | None) -> str:
    if value is None:
        return NA
    text = f"{abs(value) * 100:,.1f}\u00a0%"
    return ("+" if value > 0 else MINUS if value < 0 else "\u00b1") + text


def value(kind: str, number: float | None, currency: str) -> str:
    """A KPI value in its format (money | count | percent | ratio)."""
    if kind == "money":
        return money(number, currency)
    if kind == "percent":
        return percent(number)
    if kind == "ratio":
        return ratio(number)
    return count(number)
