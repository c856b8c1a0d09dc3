"""The cleansing functions mappings call through RML-FNML."""

import pytest

from opportunity_kg.functions import boolean, forecast_category, to_date, to_datetime, to_decimal


@pytest.mark.parametrize("raw,expected", [
    ("2024-11-14", "2024-11-14"), ("11/14/2024", "2024-11-14"), ("3/7/24", "2024-03-07"),
    ("2024-01-22T16:14:25.000+0000", "2024-01-22"), ("45610", "2024-11-14"), ("", None),
])
def test_dates(raw, expected):
    assert to_date(raw) == expected


@pytest.mark.parametrize("raw,expected", [
    ("2024-01-22T16:14:25.000+0000", "2024-01-22T16:14:25Z"),
    ("2024-01-22T18:14:25+02:00", "2024-01-22T16:14:25Z"),
    ("2024-01-22T16:14:25Z", "2024-01-22T16:14:25Z"),
    ("1/22/2024 4:14 PM", "2024-01-22T16:14:00"),
])
def test_datetimes(raw, expected):
    assert to_datetime(raw) == expected


@pytest.mark.parametrize("raw", ["next tuesday", "2024-13-45", "31/31/2024"])
def test_bad_dates_raise(raw):
    with pytest.raises(ValueError):
        to_date(raw)


@pytest.mark.parametrize("raw,expected", [
    ("1", "true"), ("", "false"), (None, "false"), ("TRUE", "true"), ("no", "false"), ("Yes", "true")])
def test_booleans(raw, expected):
    assert boolean(raw) == expected


def test_bad_boolean_raises():
    with pytest.raises(ValueError):
        boolean("maybe")


@pytest.mark.parametrize("raw,expected", [
    ("1124741.15", "1124741.15"), ("1,234.50", "1234.5"), ("1.234,50", "1234.5"), ("USD 1200", "1200"),
    ("€ 99", "99"), ("(50)", "-50"), ("207800.00", "207800"), ("0.00", "0")])
def test_amounts(raw, expected):
    assert to_decimal(raw) == expected


def test_bad_amount_raises():
    with pytest.raises(ValueError):
        to_decimal("a lot")


@pytest.mark.parametrize("raw,name", [("Best Case", "BestCase"), ("BestCase", "BestCase"),
                                      ("Pipeline", "Pipeline"), ("omitted", "Omitted")])
def test_forecast_categories(raw, name):
    assert forecast_category(raw).endswith("#" + name)


def test_unknown_forecast_category_raises():
    with pytest.raises(ValueError):
        forecast_category("Hopeful")
