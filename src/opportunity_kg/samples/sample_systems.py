"""Sample exports of the other systems: HubSpot, Dynamics 365 and GLEIF.

They are made from the Salesforce sample (:mod:`opportunity_kg.samples.sample`), so the
same invented companies, people and deals appear in every system, each in
that system's own file names, column names, codes and formats:

- HubSpot: ``hubspot-crm-exports-all-deals|companies|contacts-<date>.csv`` with
  property labels as headers ("Deal Stage") or, with ``style="internal"``,
  internal names ("dealstage"); two pipelines, the default one and a custom
  "Renewals" pipeline with numeric ids, described for the ingest by the
  ``deal-stages.csv`` and ``pipelines.csv`` lookup tables written beside them;
- Dynamics 365: ``opportunity.csv`` and ``account.csv`` with logical names
  (``estimatedvalue``, ``statecode``, ``msdyn_forecastcategory``) and GUIDs;
- GLEIF: level 1 (LEI-CDF) and level 2 relationship (RR-CDF) golden-copy
  CSV files with GLEIF's column names, for the sample's top-level companies.

:func:`write_system_sample` is what ``okg sample --system`` calls.
"""

import csv
import random
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from .sample import (DEFAULT_OPPORTUNITIES, DEFAULT_SEED, SAMPLE_AS_OF, _domain, _number, build_sample, lei_for,
                     write_sample)

SYSTEMS = ("salesforce", "hubspot", "dynamics", "gleif")

# Salesforce stage -> HubSpot default pipeline stage
HUBSPOT_STAGES = {
    "Prospecting": "appointmentscheduled", "Qualification": "qualifiedtobuy",
    "Needs Analysis": "presentationscheduled", "Value Proposition": "presentationscheduled",
    "Id. Decision Makers": "decisionmakerboughtin", "Perception Analysis": "decisionmakerboughtin",
    "Proposal/Price Quote": "contractsent", "Negotiation/Review": "contractsent",
    "Closed Won": "closedwon", "Closed Lost": "closedlost",
}
HUBSPOT_LABELS = {
    "appointmentscheduled": "Appointment Scheduled", "qualifiedtobuy": "Qualified To Buy",
    "presentationscheduled": "Presentation Scheduled", "decisionmakerboughtin": "Decision Maker Bought-In",
    "contractsent": "Contract Sent", "closedwon": "Closed Won", "closedlost": "Closed Lost",
}
HUBSPOT_PROBABILITY = {"appointmentscheduled": 20, "qualifiedtobuy": 40, "presentationscheduled": 60,
                       "decisionmakerboughtin": 80, "contractsent": 90, "closedwon": 100, "closedlost": 0}
# the custom "Renewals" pipeline: (stage id, label, probability, closed, won)
RENEWALS_ID, RENEWALS_LABEL = "2837461", "Renewals"
RENEWAL_STAGES = [("1001", "Renewal Due", 50, False, False), ("1002", "Renewal Quoted", 80, False, False),
                  ("1003", "Renewed", 100, True, True), ("1004", "Churned", 0, True, False)]
HUBSPOT_DEAL_COLUMNS = [  # (internal name, label)
    ("hs_object_id", "Record ID"), ("dealname", "Deal Name"), ("pipeline", "Pipeline"),
    ("dealstage", "Deal Stage"), ("closedate", "Close Date"), ("amount", "Amount"),
    ("deal_currency_code", "Currency"), ("hubspot_owner_id", "Deal owner"), ("dealtype", "Deal Type"),
    ("hs_manual_forecast_category", "Forecast category"), ("associatedcompanyids", "Associated Company IDs"),
    ("createdate", "Create Date"), ("hs_lastmodifieddate", "Last Modified Date"),
]
HUBSPOT_COMPANY_COLUMNS = [
    ("hs_object_id", "Record ID"), ("name", "Company name"), ("domain", "Company Domain Name"),
    ("industry", "Industry"), ("address", "Street Address"), ("city", "City"), ("zip", "Postal Code"),
    ("country", "Country/Region"), ("duns_number", "DUNS Number"), ("lei", "LEI"),
    ("salesforceaccountid", "Salesforce Account ID"),
    ("numberofemployees", "Number of Employees"), ("annualrevenue", "Annual Revenue"),
    ("hs_parent_company_id", "Parent Company"), ("hubspot_owner_id", "Company owner"),
    ("createdate", "Create Date"), ("hs_lastmodifieddate", "Last Modified Date"),
]
HUBSPOT_CONTACT_COLUMNS = [
    ("hs_object_id", "Record ID"), ("firstname", "First Name"), ("lastname", "Last Name"), ("email", "Email"),
    ("jobtitle", "Job Title"), ("associatedcompanyid", "Associated Company ID"),
    ("hubspot_owner_id", "Contact owner"), ("createdate", "Create Date"), ("lastmodifieddate", "Last Modified Date"),
]
DYNAMICS_OPPORTUNITY_COLUMNS = [
    "opportunityid", "name", "_parentaccountid_value", "estimatedvalue", "estimatedclosedate", "closeprobability",
    "stepname", "statecode", "statuscode", "msdyn_forecastcategory", "_ownerid_value", "transactioncurrencyid",
    "actualvalue", "actualclosedate", "createdon", "modifiedon",
]
DYNAMICS_ACCOUNT_COLUMNS = [
    "accountid", "name", "_parentaccountid_value", "accountnumber", "revenue", "numberofemployees",
    "address1_line1", "address1_city", "address1_postalcode", "address1_country", "websiteurl", "_ownerid_value", "createdon", "modifiedon",
]
# Salesforce stage -> Dynamics sales process stage (stepname)
DYNAMICS_STEPS = {"Prospecting": "1-Qualify", "Qualification": "1-Qualify", "Needs Analysis": "2-Develop",
                  "Value Proposition": "2-Develop", "Id. Decision Makers": "2-Develop",
                  "Perception Analysis": "3-Propose", "Proposal/Price Quote": "3-Propose",
                  "Negotiation/Review": "4-Close", "Closed Won": "4-Close", "Closed Lost": "4-Close"}
DYNAMICS_FORECAST = {"Pipeline": "100000001", "Best Case": "100000002", "Commit": "100000003",
                     "Omitted": "100000004", "Closed": "100000005"}
GLEIF_L1_COLUMNS = [
    "LEI", "Entity.LegalName", "Entity.LegalName.xmllang", "Entity.LegalAddress.FirstAddressLine",
    "Entity.LegalAddress.City", "Entity.LegalAddress.PostalCode",
    "Entity.LegalAddress.Country", "Entity.HeadquartersAddress.Country", "Entity.LegalJurisdiction",
    "Entity.EntityCategory", "Entity.LegalForm.EntityLegalFormCode", "Entity.EntityStatus",
    "Registration.InitialRegistrationDate", "Registration.LastUpdateDate", "Registration.RegistrationStatus",
    "Registration.ManagingLOU",
]
GLEIF_RR_COLUMNS = [
    "Relationship.StartNode.NodeID", "Relationship.StartNode.NodeIDType", "Relationship.EndNode.NodeID",
    "Relationship.EndNode.NodeIDType", "Relationship.RelationshipType", "Relationship.RelationshipStatus",
    "Relationship.Period.1.startDate", "Relationship.Period.1.endDate", "Relationship.Period.1.periodType",
    "Registration.InitialRegistrationDate", "Registration.LastUpdateDate", "Registration.RegistrationStatus",
    "Registration.ValidationSources",
]
ISO_COUNTRY = {"United States": "US", "Canada": "CA", "Brazil": "BR", "United Kingdom": "GB", "Germany": "DE",
               "France": "FR", "Sweden": "SE", "Australia": "AU", "Japan": "JP", "India": "IN", "Singapore": "SG"}


def _guid(text):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "okg-sample:" + text))


def _hs_time(ts):
    """Salesforce's 2026-01-22T16:14:25.000+0000 as HubSpot exports write it: 2026-01-22 16:14."""
    return ts[:10] + " " + ts[11:16]


#: legal forms by ISO country, as GLEIF records spell them
LEGAL_FORMS = {"US": "Inc.", "CA": "Inc.", "DE": "GmbH", "GB": "Ltd", "FR": "SAS", "BR": "Ltda.", "JP": "K.K.",
               "AU": "Pty Ltd", "SE": "AB", "SG": "Pte. Ltd.", "IN": "Private Limited", "NL": "B.V."}
SAMPLE_SUFFIXES = ("Pty Ltd", "Inc.", "Ltd", "GmbH", "S.A.", "LLC", "plc", "AG", "K.K.", "B.V.")


def base_name(name):
    """A sample company name without its legal form."""
    for suffix in SAMPLE_SUFFIXES:
        if name.endswith(" " + suffix):
            return name[: -len(suffix) - 1]
    return name


def respell(name, rng):
    """The same company as another system may write it: without its legal form, in capitals,
    with "&" for "and", or as it is."""
    roll = rng.random()
    if roll < 0.15:
        return base_name(name)
    if roll < 0.25:
        return name.upper()
    if roll < 0.3:
        return name.replace(" and ", " & ") if " and " in name else name + " Group"
    return name


def hubspot_rows(sf, style="labels", rng=None):
    rng = rng or random.Random(0)
    users = {u["Id"]: u for u in sf["User.csv"]}
    owner = {uid: (_number(uid, 8) if style == "internal" else u["Name"]) for uid, u in users.items()}
    company_id = {a["Id"]: _number(a["Id"]) for a in sf["Account.csv"]}
    companies = []
    spelling = random.Random("hubspot-names")  # its own generator: the other columns do not change
    identifiers = random.Random("hubspot-identifiers")
    for a in sf["Account.csv"]:
        # identifiers as a second CRM has them: the Salesforce integration's Account ID on about a
        # third of the companies, a D-U-N-S Number on half (some with dashes), the LEI on a few
        duns = a["DunsNumber"] if identifiers.random() < 0.8 else ""
        if duns and identifiers.random() < 0.3:
            duns = f"{duns[:2]}-{duns[2:5]}-{duns[5:]}"
        companies.append({
            "address": a["BillingStreet"].replace(" Street", " St") if identifiers.random() < 0.4
            else a["BillingStreet"], "zip": a["BillingPostalCode"] if identifiers.random() < 0.7 else "", "duns_number": duns,
            "lei": a["LEI__c"] if identifiers.random() < 0.5 else "",
            # the sync id as the integration writes it (18 characters), or copied from Salesforce's
            # user interface (15)
            "salesforceaccountid": (a["Id"] if identifiers.random() < 0.75 else a["Id"][:15])
            if identifiers.random() < 0.35 else "",
            "hs_object_id": company_id[a["Id"]], "name": respell(a["Name"], spelling), "domain": _domain(a["Name"]),
            "industry": a["Industry"].upper().replace(" ", "_") if style == "internal" else a["Industry"],
            "country": a["BillingCountry"], "city": a["BillingCity"], "numberofemployees": a["NumberOfEmployees"],
            "annualrevenue": a["AnnualRevenue"], "hs_parent_company_id": company_id.get(a["ParentId"], ""),
            "hubspot_owner_id": owner[a["OwnerId"]], "createdate": _hs_time(a["CreatedDate"]),
            "hs_lastmodifieddate": _hs_time(a["LastModifiedDate"])})
    contacts = []
    for c in sf["Contact.csv"]:
        contacts.append({
            "hs_object_id": _number(c["Id"]), "firstname": c["FirstName"], "lastname": c["LastName"],
            "email": c["Email"], "jobtitle": c["Title"], "associatedcompanyid": company_id[c["AccountId"]],
            "hubspot_owner_id": owner[c["OwnerId"]], "createdate": _hs_time(c["CreatedDate"]),
            "lastmodifieddate": _hs_time(c["LastModifiedDate"])})
    deals = []
    for o in sf["Opportunity.csv"]:
        renewal = o["Type"] == "Existing Business - Renewal"
        if renewal:
            if o["IsClosed"] == "true":
                stage = RENEWAL_STAGES[2] if o["IsWon"] == "true" else RENEWAL_STAGES[3]
            else:
                stage = RENEWAL_STAGES[1] if int(o["Probability"]) >= 60 else RENEWAL_STAGES[0]
            stage_value = stage[0] if style == "internal" else stage[1]
            pipeline = RENEWALS_ID if style == "internal" else RENEWALS_LABEL
        else:
            sid = HUBSPOT_STAGES[o["StageName"]]
            stage_value = sid if style == "internal" else HUBSPOT_LABELS[sid]
            pipeline = "default" if style == "internal" else "Sales Pipeline"
        category = o["ForecastCategoryName"]
        if category == "Closed":
            category = "Closed won" if o["IsWon"] == "true" else "Not forecasted"
        elif category == "Omitted":
            category = "Not forecasted"
        companies_of_deal = [company_id[o["AccountId"]]]
        if rng.random() < 0.05:  # a deal associated with a second company too
            companies_of_deal.append(rng.choice(list(company_id.values())))
        deals.append({
            "hs_object_id": _number(o["Id"]), "dealname": o["Name"], "pipeline": pipeline, "dealstage": stage_value,
            "closedate": o["CloseDate"] if style == "internal" else o["CloseDate"] + " 00:00",
            "amount": o["Amount"], "deal_currency_code": o["CurrencyIsoCode"],
            "hubspot_owner_id": owner[o["OwnerId"]],
            "dealtype": "newbusiness" if o["Type"] == "New Business" else "existingbusiness",
            "hs_manual_forecast_category": category.upper().replace(" ", "_") if style == "internal" else category,
            "associatedcompanyids": ";".join(companies_of_deal),
            "createdate": _hs_time(o["CreatedDate"]), "hs_lastmodifieddate": _hs_time(o["LastModifiedDate"])})
    return deals, companies, contacts


def hubspot_lookups():
    """The deal-stages.csv and pipelines.csv rows for the default and the Renewals pipelines."""
    stages = []
    for sid, label in HUBSPOT_LABELS.items():
        p = HUBSPOT_PROBABILITY[sid]
        closed, won = sid.startswith("closed"), sid == "closedwon"
        for key, scope in ((sid, ""), (label, "Sales Pipeline"), (label, "default")):
            stages.append([key, scope, sid, str(closed).lower(), str(won).lower(), p, label, "default"])
    for sid, label, p, closed, won in RENEWAL_STAGES:
        for key, scope in ((sid, ""), (label, RENEWALS_LABEL), (label, RENEWALS_ID)):
            stages.append([key, scope, sid, str(closed).lower(), str(won).lower(), p, label, RENEWALS_ID])
    pipelines = [["default", "default"], ["Sales Pipeline", "default"], [RENEWALS_ID, RENEWALS_ID],
                 [RENEWALS_LABEL, RENEWALS_ID]]
    return stages, pipelines


def dynamics_rows(sf):
    users = {u["Id"]: _guid(u["Id"]) for u in sf["User.csv"]}
    accounts = []
    for a in sf["Account.csv"]:
        accounts.append({
            "accountid": _guid(a["Id"]), "name": a["Name"],
            "_parentaccountid_value": _guid(a["ParentId"]) if a["ParentId"] else "",
            "accountnumber": "ACC-" + _number(a["Id"], 6), "revenue": a["AnnualRevenue"],
            "numberofemployees": a["NumberOfEmployees"], "address1_country": a["BillingCountry"],
            "address1_city": a["BillingCity"], "address1_line1": a["BillingStreet"],
            "address1_postalcode": a["BillingPostalCode"], "websiteurl": "https://www." + _domain(a["Name"]),
            "_ownerid_value": users[a["OwnerId"]], "createdon": _dyn_time(a["CreatedDate"]),
            "modifiedon": _dyn_time(a["LastModifiedDate"])})
    opportunities = []
    for o in sf["Opportunity.csv"]:
        closed, won = o["IsClosed"] == "true", o["IsWon"] == "true"
        state = "1" if won else ("2" if closed else "0")
        category = DYNAMICS_FORECAST[o["ForecastCategoryName"]] if not (closed and not won) else "100000006"
        opportunities.append({
            "opportunityid": _guid(o["Id"]), "name": o["Name"], "_parentaccountid_value": _guid(o["AccountId"]),
            "estimatedvalue": o["Amount"], "estimatedclosedate": _us_date(o["CloseDate"]),
            "closeprobability": o["Probability"], "stepname": DYNAMICS_STEPS[o["StageName"]], "statecode": state,
            "statuscode": {"0": "1", "1": "3", "2": "4"}[state], "msdyn_forecastcategory": category,
            "_ownerid_value": users[o["OwnerId"]], "transactioncurrencyid": o["CurrencyIsoCode"],
            "actualvalue": o["Amount"] if won else "", "actualclosedate": _us_date(o["CloseDate"]) if closed else "",
            "createdon": _dyn_time(o["CreatedDate"]), "modifiedon": _dyn_time(o["LastModifiedDate"])})
    return opportunities, accounts


def _dyn_time(ts):
    """Dynamics' US-locale export form: 1/22/2024 4:14 PM."""
    moment = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    return f"{moment.month}/{moment.day}/{moment.year} {moment.strftime('%I:%M %p').lstrip('0')}"


def _us_date(iso):
    year, month, day = iso.split("-")
    return f"{int(month)}/{int(day)}/{year}"


def gleif_rows(sf):
    """Legal entities for the sample's accounts and their relationships, with what real data has:
    legal names spelled as registered (legal form of the country, often in capitals), about one
    company in ten not in GLEIF, and one subsidiary acquired mid-history by another group (its old
    relationships ended, new ones begun; the CRM still shows the old parent)."""
    accounts = {a["Id"]: a for a in sf["Account.csv"]}
    rng = random.Random("gleif")
    missing = {aid for aid in sorted(accounts) if rng.random() < 0.1}
    parent = {aid: a["ParentId"] for aid, a in accounts.items()}
    entities, relationships = [], []
    stamp = SAMPLE_AS_OF.isoformat() + "T06:00:00Z"

    def top(aid, parents):
        while parents.get(aid):
            aid = parents[aid]
        return aid

    # the acquisition: a direct subsidiary moves to another group on this day
    tops = sorted(aid for aid in accounts if not parent[aid] and aid not in missing)
    named = defaultdict(int)
    for a in accounts.values():
        named[a["Name"]] += 1
    movers = sorted(aid for aid in accounts if parent[aid] and not parent[parent[aid]] and aid not in missing
                    and named[accounts[aid]["Name"]] == 1 and parent[aid] not in missing)
    acquired, buyer, on = None, None, "2026-03-31"
    if movers and len(tops) > 1:
        acquired = movers[len(movers) // 2]
        buyer = next(t for t in tops if t != parent[acquired])
    after = dict(parent, **({acquired: buyer} if acquired else {}))

    def relationship(child, end, kind, start, ended=""):
        return {
            "Relationship.StartNode.NodeID": child, "Relationship.StartNode.NodeIDType": "LEI",
            "Relationship.EndNode.NodeID": end, "Relationship.EndNode.NodeIDType": "LEI",
            "Relationship.RelationshipType": kind, "Relationship.RelationshipStatus": "INACTIVE" if ended else "ACTIVE",
            "Relationship.Period.1.startDate": start + "T00:00:00Z",
            "Relationship.Period.1.endDate": ended + "T00:00:00Z" if ended else "",
            "Relationship.Period.1.periodType": "RELATIONSHIP_PERIOD",
            "Registration.InitialRegistrationDate": start + "T00:00:00Z",
            "Registration.LastUpdateDate": stamp, "Registration.RegistrationStatus": "PUBLISHED",
            "Registration.ValidationSources": "FULLY_CORROBORATED"}

    for aid, a in accounts.items():
        if aid in missing:
            continue
        country = ISO_COUNTRY.get(a["BillingCountry"], "US")
        legal = f"{base_name(a['Name'])} {LEGAL_FORMS.get(country, 'Ltd')}"
        entities.append({
            "LEI": lei_for(aid), "Entity.LegalName": legal.upper() if rng.random() < 0.4 else legal,
            "Entity.LegalName.xmllang": "en", "Entity.LegalAddress.City": a["BillingCity"],
            # the registered address: the billing one for most, another office for some
            "Entity.LegalAddress.FirstAddressLine": a["BillingStreet"] if rng.random() < 0.8 else "1 Registry Square",
            "Entity.LegalAddress.PostalCode": a["BillingPostalCode"],
            "Entity.LegalAddress.Country": country, "Entity.HeadquartersAddress.Country": country,
            "Entity.LegalJurisdiction": country, "Entity.EntityCategory": "GENERAL",
            "Entity.LegalForm.EntityLegalFormCode": "8888", "Entity.EntityStatus": "ACTIVE",
            "Registration.InitialRegistrationDate": a["CreatedDate"][:10] + "T00:00:00Z",
            "Registration.LastUpdateDate": stamp, "Registration.RegistrationStatus": "ISSUED",
            "Registration.ManagingLOU": "5493001KJTIIGC8Y1R12"})
        if not parent[aid] or parent[aid] in missing or top(aid, parent) in missing:
            continue
        start = a["CreatedDate"][:10]
        kinds = (("IS_DIRECTLY_CONSOLIDATED_BY", parent[aid]), ("IS_ULTIMATELY_CONSOLIDATED_BY", top(aid, parent)))
        if aid == acquired:
            for kind, end in kinds:
                relationships.append(relationship(lei_for(aid), lei_for(end), kind, start, on))
            for kind, end in (("IS_DIRECTLY_CONSOLIDATED_BY", buyer), ("IS_ULTIMATELY_CONSOLIDATED_BY", top(buyer, after))):
                relationships.append(relationship(lei_for(aid), lei_for(end), kind, on))
        else:
            for kind, end in (("IS_DIRECTLY_CONSOLIDATED_BY", after[aid]), ("IS_ULTIMATELY_CONSOLIDATED_BY", top(aid, after))):
                relationships.append(relationship(lei_for(aid), lei_for(end), kind, start))
    return entities, relationships


def _write(path, columns, rows, header=None):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header or columns)
        for row in rows:
            writer.writerow([row.get(c, "") if isinstance(row, dict) else row[i] for i, c in enumerate(columns)])
    return len(rows)


def write_system_sample(system, out_dir, opportunities=DEFAULT_OPPORTUNITIES, seed=DEFAULT_SEED, style="labels",
                        stakeholder_signal=True):
    """Write the sample export of ``system`` into ``out_dir``; the row count per file written."""
    if system == "salesforce":
        return write_sample(out_dir, opportunities=opportunities, seed=seed, stakeholder_signal=stakeholder_signal)
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; use one of {', '.join(SYSTEMS)}")
    sf = build_sample(opportunities, seed, stakeholder_signal=stakeholder_signal)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    day = SAMPLE_AS_OF.isoformat()
    counts = {}
    if system == "hubspot":
        deals, companies, contacts = hubspot_rows(sf, style, random.Random(f"{seed}/hubspot"))
        for kind, columns, rows in (("deals", HUBSPOT_DEAL_COLUMNS, deals),
                                    ("companies", HUBSPOT_COMPANY_COLUMNS, companies),
                                    ("contacts", HUBSPOT_CONTACT_COLUMNS, contacts)):
            name = f"hubspot-crm-exports-all-{kind}-{day}.csv"
            header = [internal if style == "internal" else label for internal, label in columns]
            counts[name] = _write(out / name, [internal for internal, _ in columns], rows, header)
        stages, pipelines = hubspot_lookups()
        counts["deal-stages.csv"] = _write(out / "deal-stages.csv",
                                           ["key", "scope", "stage", "is_closed", "is_won", "probability", "label",
                                            "pipeline"], stages)
        counts["pipelines.csv"] = _write(out / "pipelines.csv", ["key", "value"], pipelines)
    elif system == "dynamics":
        opportunities_rows, accounts = dynamics_rows(sf)
        counts["opportunity.csv"] = _write(out / "opportunity.csv", DYNAMICS_OPPORTUNITY_COLUMNS, opportunities_rows)
        counts["account.csv"] = _write(out / "account.csv", DYNAMICS_ACCOUNT_COLUMNS, accounts)
    else:
        entities, relationships = gleif_rows(sf)
        stamp = day.replace("-", "") + "-0000"
        counts[f"{stamp}-gleif-goldencopy-lei2-golden-copy.csv"] = _write(
            out / f"{stamp}-gleif-goldencopy-lei2-golden-copy.csv", GLEIF_L1_COLUMNS, entities)
        counts[f"{stamp}-gleif-goldencopy-rr-golden-copy.csv"] = _write(
            out / f"{stamp}-gleif-goldencopy-rr-golden-copy.csv", GLEIF_RR_COLUMNS, relationships)
    return counts
