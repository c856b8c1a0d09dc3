"""The cleansing functions mappings call through RML-FNML."""

import pytest

from opportunity_kg.mapping.functions import (boolean, digits, first, forecast_category, join, lookup, salesforce_id, split,
                                      to_date, to_datetime, to_decimal, to_integer, web_domain)


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
    ("1", "true"), ("", "false"), (None, None), ("TRUE", "true"), ("no", "false"), ("Yes", "true")])
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


@pytest.mark.parametrize("raw,name", [("Closed won", "Closed"), ("Not forecasted", "Omitted"),
                                      ("Committed", "Commit"), ("Best case", "BestCase"), ("NOT_FORECASTED", "Omitted")])
def test_forecast_categories_of_hubspot_and_dynamics(raw, name):
    assert forecast_category(raw).endswith("#" + name)


@pytest.mark.parametrize("raw,expected", [
    ("2026-01-22 16:14", "2026-01-22T16:14:00"), ("2026-01-22T16:14:25.000+00:00", "2026-01-22T16:14:25Z"),
    ("11/26/2026 10:05 AM", "2026-11-26T10:05:00"), ("45610.5", "2024-11-14T12:00:00")])
def test_datetimes_of_other_exports(raw, expected):
    assert to_datetime(raw) == expected


@pytest.mark.parametrize("raw,expected", [("1,200", "1200"), ("1200.0", "1200"), ("", None), (" 7 ", "7")])
def test_integers(raw, expected):
    assert to_integer(raw) == expected


def test_integer_rejects_a_fraction():
    with pytest.raises(ValueError, match="whole number"):
        to_integer("12.5")


def test_split_first_and_join():
    assert split("Decision Maker; Economic Buyer;;") == ["Decision Maker", "Economic Buyer"]
    assert split("1;2", prefix="http://x/c/") == ["http://x/c/1", "http://x/c/2"]
    assert split("a|b", separator="|") == ["a", "b"]
    assert split("") is None
    assert first("123;456", prefix="http://x/c/") == "http://x/c/123"
    assert join("Ada", "Lovelace") == "Ada Lovelace" and join("", "Lovelace") == "Lovelace"
    assert join(None, None) is None


@pytest.mark.parametrize("raw,expected", [
    ("https://www.Example.com/about", "example.com"), ("example.co.uk", "example.co.uk"),
    ("http://shop.example.com:8080", "shop.example.com"), ("", None)])
def test_web_domains(raw, expected):
    assert web_domain(raw) == expected


def test_web_domain_rejects_what_is_not_one():
    with pytest.raises(ValueError):
        web_domain("not a site")


@pytest.fixture
def stages(tmp_path):
    path = tmp_path / "stages.csv"
    path.write_text("key,scope,value,closed\n"
                    "won,,closedwon,true\n"
                    "Renewed,Renewals,1003,true\n"
                    "Renewed,Sales Pipeline,closedwon,true\n"
                    "Parked,,,false\n"
                    "FUND,,error: a fund relationship,\n", encoding="utf-8")
    return str(path)


def test_lookup_by_key_scope_and_column(stages):
    assert lookup(" WON ", stages) == "closedwon"
    assert lookup("Renewed", stages, scope="Renewals") == "1003"
    assert lookup("Renewed", stages, scope="Sales Pipeline") == "closedwon"
    assert lookup("Renewed", stages, scope="Renewals", column="closed") == "true"
    assert lookup("Renewed", stages, scope="Renewals", prefix="http://x/stage/") == "http://x/stage/1003"
    assert lookup("Parked", stages) is None  # an empty cell gives no value
    assert lookup("", stages) is None


def test_lookup_passes_ids_through_and_rejects_the_rest(stages):
    assert lookup("98765", stages, pass_through="[0-9]+", prefix="http://x/stage/") == "http://x/stage/98765"
    with pytest.raises(ValueError, match="'Renewed' for 'Other' is not in the lookup table stages.csv"):
        lookup("Renewed", stages, scope="Other")
    with pytest.raises(ValueError, match="^a fund relationship$"):
        lookup("FUND", stages)
    with pytest.raises(ValueError, match="no column 'nope'"):
        lookup("won", stages, column="nope")


def test_salesforce_ids_in_their_18_character_form():
    """The 15-character Ids of Salesforce's user interface get the 3-character suffix the export's
    Id column has (checked against ../shared/datasets' Account.csv and User ids)."""
    assert salesforce_id("001Ec00000FzlUd") == "001Ec00000FzlUdIAJ"
    assert salesforce_id("005Ec000004o8yH") == "005Ec000004o8yHIAQ"
    assert salesforce_id(" 001Ec00000GGw3hIAD ") == "001Ec00000GGw3hIAD"
    assert salesforce_id("001Ec00000FzlUd", prefix="http://x/a/") == "http://x/a/001Ec00000FzlUdIAJ"
    assert salesforce_id("") is None and salesforce_id("n/a") == "n/a"  # kept: it just names no record


def test_identifier_digits():
    assert digits("12-345-6789") == "123456789" and digits(" 123456789 ") == "123456789"
    assert digits("n/a") is None and digits(None) is None


@pytest.mark.parametrize("raw,pattern,expected", [
    ("03/04/2026", "dd/MM/yyyy", "2026-04-03"),  # the day first, which the usual forms would read as March 4
    ("3.4.26", "d.M.yy", "2026-04-03"),
    ("5 Mar 2026", "d MMM yyyy", "2026-03-05"),
    ("2026-04-03T09:30", "yyyy-MM-dd'T'HH:mm", "2026-04-03"),
    ("03042026", "%d%m%Y", "2026-04-03"),  # a strptime format as it is
])
def test_dates_in_a_given_format(raw, pattern, expected):
    from opportunity_kg.mapping.functions import to_date

    assert to_date(raw, pattern) == expected


def test_a_given_format_is_the_only_one_read():
    from opportunity_kg.mapping.functions import to_date, to_datetime

    assert to_datetime("31.12.2026 05:07 PM", "dd.MM.yyyy hh:mm a") == "2026-12-31T17:07:00"
    with pytest.raises(ValueError, match="not a date in the format dd/MM/yyyy"):
        to_date("2026-04-03", "dd/MM/yyyy")
    with pytest.raises(ValueError, match="letter 'Q' that is not a date or time part"):
        to_date("1", "dd/QQ")
