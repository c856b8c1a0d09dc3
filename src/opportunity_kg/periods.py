"""Calendar periods, in one place: the periods canned queries and forecasts are asked about
(``2026-Q4``, ``2026-H2``, ``2026-11``, ``2026``), the quarter a day falls in, months later."""

import re
from datetime import date, timedelta

#: a period as the canned queries and the forecast take it: a year, a quarter, a half or a month
PERIOD = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|H([12])|(0[1-9]|1[0-2])))?$")


def period_range(text):
    """The first day of a period and the first day after it."""
    match = PERIOD.match(text.strip())
    if not match:
        raise ValueError(f"not a period: {text!r}")
    year, quarter, half, month = match.groups()
    year = int(year)
    if quarter:
        start_month, months = (int(quarter) - 1) * 3 + 1, 3
    elif half:
        start_month, months = (int(half) - 1) * 6 + 1, 6
    elif month:
        start_month, months = int(month), 1
    else:
        start_month, months = 1, 12
    end_index = start_month - 1 + months
    return date(year, start_month, 1), date(year + end_index // 12, end_index % 12 + 1, 1)


def months_later(day, months):
    """The same day of the month ``months`` later (earlier when negative), at most the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def period_of(day, months):
    """The calendar period of ``months`` months (1, 3, 6 or 12) that ``day`` falls in, as (start, end)."""
    first = (day.month - 1) // months * months + 1
    start = date(day.year, first, 1)
    return start, months_later(start, months)


def quarter_of(day):
    """The calendar quarter ``day`` falls in, as (start, end)."""
    return period_of(day, 3)


def quarter_back(day, n):
    """The calendar quarter ``n`` quarters before the one ``day`` falls in, as (start, end)."""
    start = quarter_of(day)[0]
    return quarter_of(months_later(start, -3 * n))


def quarter_label(day):
    """The quarter ``day`` falls in as a period: ``2026-Q4``."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
