"""A realistic, deterministic sample Salesforce export.

:func:`write_sample` writes the CSV files a Salesforce data export holds, with
Salesforce's own API column names: a role hierarchy, users with managers,
a territory hierarchy with assignments, accounts in hierarchies several levels
deep, contacts with reporting lines, opportunities over several quarters (won,
lost, open, slipped), their stage history and the contacts' roles on them.

The same ``seed`` and ``opportunities`` always give byte-identical files.
"""

import csv
import hashlib
import math
import random
from decimal import Decimal
from datetime import date, datetime, time, timedelta
from dataclasses import dataclass
from pathlib import Path

from ..mapping.functions import salesforce_id
from ..periods import quarter_back, quarter_of

#: the day the sample export is taken (its data is as of this date)
SAMPLE_AS_OF = date(2026, 11, 16)
#: how many opportunities the quick start's sample holds
DEFAULT_OPPORTUNITIES = 500
DEFAULT_SEED = 42

# Salesforce's standard sales process: (label, probability, forecast category, closed, won)
STAGES = [
    ("Prospecting", 10, "Pipeline", False, False),
    ("Qualification", 10, "Pipeline", False, False),
    ("Needs Analysis", 20, "Pipeline", False, False),
    ("Value Proposition", 50, "Best Case", False, False),
    ("Id. Decision Makers", 60, "Best Case", False, False),
    ("Perception Analysis", 70, "Best Case", False, False),
    ("Proposal/Price Quote", 75, "Commit", False, False),
    ("Negotiation/Review", 90, "Commit", False, False),
    ("Closed Won", 100, "Closed", True, True),
    ("Closed Lost", 0, "Omitted", True, False),
]
OPEN_STAGES = [s for s in STAGES if not s[3]]
FORECAST_API = {"Pipeline": "Pipeline", "Best Case": "BestCase", "Commit": "Commit",
                "Closed": "Closed", "Omitted": "Omitted"}

REGIONS = {
    "AMER": ["US East", "US West", "Canada", "LATAM"],
    "EMEA": ["UK & Ireland", "DACH", "France", "Nordics"],
    "APAC": ["ANZ", "Japan", "India", "Southeast Asia"],
}
COUNTRIES = {
    "US East": "United States", "US West": "United States", "Canada": "Canada", "LATAM": "Brazil",
    "UK & Ireland": "United Kingdom", "DACH": "Germany", "France": "France", "Nordics": "Sweden",
    "ANZ": "Australia", "Japan": "Japan", "India": "India", "Southeast Asia": "Singapore",
}
INDUSTRIES = ["Manufacturing", "Financial Services", "Healthcare", "Retail", "Technology",
              "Energy", "Telecommunications", "Logistics", "Public Sector", "Education"]
NAME_A = ["Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Adventure", "Litware", "Proseware",
          "Lucerne", "Margie", "Alpine", "Blue Yonder", "Coho", "Datum", "Fourth Coffee", "Humongous",
          "Relecloud", "Trey", "VanArsdel", "Woodgrove", "Graphic", "Consolidated", "Southridge", "Wide World"]
NAME_B = ["Industries", "Holdings", "Systems", "Group", "Partners", "Logistics", "Labs", "Energy",
          "Health", "Bank", "Retail", "Foods", "Motors", "Networks"]
SUFFIX = ["Inc.", "Ltd", "GmbH", "S.A.", "LLC", "plc", "AG", "Pty Ltd", "K.K.", "B.V."]
FIRST = ["Ava", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jack", "Kira", "Liam",
         "Maya", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will", "Yuki",
         "Zoe", "Aiko", "Bruno", "Carmen", "Dev", "Elena", "Farid", "Greta", "Hana", "Ivan", "Jonas", "Lena"]
LAST = ["Smith", "Jones", "Garcia", "Müller", "Martin", "Rossi", "Tanaka", "Patel", "Kim", "Nguyen",
        "Schmidt", "Dubois", "Silva", "Brown", "Wilson", "Andersson", "O'Brien", "Kowalski", "Sato", "Singh",
        "Lopez", "Becker", "Moreau", "Clarke", "Fischer", "Ito", "Novak", "Hughes", "Meyer", "Costa"]
TITLES = ["CFO", "CIO", "CTO", "VP Operations", "Head of Procurement", "IT Director", "Engineering Manager",
          "Finance Manager", "Solutions Architect", "Operations Analyst", "COO", "Purchasing Manager"]
CONTACT_ROLES = ["Decision Maker", "Economic Buyer", "Champion", "Influencer", "Technical Buyer",
                 "Evaluator", "Business User", "Executive Sponsor"]
NEXT_STEPS = ["Book a demo", "Send the proposal", "Security review with IT", "Meet the economic buyer",
              "Agree pricing", "Legal review of the contract", "Plan the pilot"]
LEAD_SOURCES = ["Web", "Partner Referral", "Trade Show", "Outbound", "Customer Referral", "Webinar"]
PRODUCTS = ["Platform", "Analytics Suite", "Integration Hub", "Support Plus", "Data Cloud", "Security Pack"]
PRODUCT_FAMILIES = {"Platform": "Core", "Analytics Suite": "Analytics", "Integration Hub": "Core",
                    "Support Plus": "Services", "Data Cloud": "Analytics", "Security Pack": "Add-ons"}
COMPETITORS = ["Globex", "Initech", "Umbrella Systems", "Hooli", "Vandelay Software"]
# a custom picklist on Opportunity, as orgs add one (Salesforce has no standard loss-reason field)
LOSS_REASONS = ["Price", "NoDecision", "ProductFit", "Relationship", "Timing", "Competitor"]

TABLES = {
    "UserRole.csv": ["Id", "Name", "ParentRoleId", "DeveloperName", "RollupDescription", "LastModifiedDate",
                     "SystemModstamp"],
    "User.csv": ["Id", "Username", "FirstName", "LastName", "Name", "Email", "Title", "Department", "IsActive",
                 "UserRoleId", "ManagerId", "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    "Territory2.csv": ["Id", "Name", "DeveloperName", "ParentTerritory2Id", "Territory2ModelId",
                       "Territory2TypeId", "Description", "LastModifiedDate", "SystemModstamp"],
    "UserTerritory2Association.csv": ["Id", "UserId", "Territory2Id", "RoleInTerritory2", "IsActive",
                                      "LastModifiedDate", "SystemModstamp"],
    "Account.csv": ["Id", "IsDeleted", "Name", "Type", "ParentId", "BillingStreet", "BillingCity",
                    "BillingPostalCode", "BillingCountry", "Website", "DunsNumber", "LEI__c", "Industry",
                    "AnnualRevenue", "NumberOfEmployees", "OwnerId", "CreatedDate", "LastModifiedDate",
                    "SystemModstamp"],
    "Contact.csv": ["Id", "IsDeleted", "AccountId", "FirstName", "LastName", "Name", "Title", "Email",
                    "ReportsToId", "OwnerId", "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    "OpportunityStage.csv": ["Id", "MasterLabel", "ApiName", "IsActive", "SortOrder", "IsClosed", "IsWon",
                             "ForecastCategory", "ForecastCategoryName", "DefaultProbability", "Description",
                             "LastModifiedDate", "SystemModstamp"],
    "Opportunity.csv": ["Id", "IsDeleted", "AccountId", "Name", "StageName", "Amount", "Probability",
                        "CloseDate", "Type", "NextStep", "LeadSource", "IsClosed", "IsWon", "ForecastCategory",
                        "ForecastCategoryName", "CurrencyIsoCode", "OwnerId", "Territory2Id", "CreatedDate",
                        "LastModifiedDate", "SystemModstamp", "FiscalQuarter", "FiscalYear", "Loss_Reason__c"],
    "OpportunityHistory.csv": ["Id", "OpportunityId", "CreatedById", "CreatedDate", "StageName", "Amount",
                               "ExpectedRevenue", "CloseDate", "Probability", "ForecastCategory", "IsDeleted",
                               "SystemModstamp"],
    "OpportunityFieldHistory.csv": ["Id", "OpportunityId", "CreatedById", "CreatedDate", "Field", "DataType",
                                    "OldValue", "NewValue", "IsDeleted"],
    "ObjectTerritory2Association.csv": ["Id", "ObjectId", "Territory2Id", "AssociationCause", "SobjectType",
                                        "IsDeleted", "LastModifiedDate", "SystemModstamp"],
    "AccountContactRelation.csv": ["Id", "AccountId", "ContactId", "Roles", "IsDirect", "IsActive", "StartDate",
                                   "EndDate", "IsDeleted", "LastModifiedDate", "SystemModstamp"],
    "OpportunityContactRole.csv": ["Id", "OpportunityId", "ContactId", "Role", "IsPrimary", "IsDeleted",
                                   "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    "Product2.csv": ["Id", "Name", "ProductCode", "Family", "IsActive", "Description", "LastModifiedDate",
                     "SystemModstamp"],
    "OpportunityLineItem.csv": ["Id", "OpportunityId", "Product2Id", "Quantity", "UnitPrice", "TotalPrice",
                                "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    "OpportunityCompetitor.csv": ["Id", "OpportunityId", "CompetitorName", "Strengths", "Weaknesses", "IsDeleted",
                                  "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    "Period.csv": ["Id", "Type", "StartDate", "EndDate", "Number", "QuarterLabel", "PeriodLabel",
                   "IsForecastPeriod", "FiscalYearSettingsId", "SystemModstamp"],
    "ForecastingQuota.csv": ["Id", "QuotaOwnerId", "QuotaAmount", "StartDate", "PeriodId", "ForecastingTypeId",
                             "CurrencyIsoCode", "IsQuantity", "LastModifiedDate", "SystemModstamp"],
}


class _Ids:
    """Salesforce-like 18-character Ids: key prefix, org pod, counter, and the case-checksum suffix
    Salesforce gives (so the 15-character form of the user interface maps back to them)."""

    def __init__(self, rng, block=0):
        self.rng = rng
        self.block = block  # each generator of Ids numbers its own block, so no two give the same Id
        self.counters = {}

    def __call__(self, prefix):
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        for _ in range(3):  # drawn as before the suffix was the real one, so the other columns stay the same
            self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        return salesforce_id(f"{prefix}Ec{self.block:03d}{_base62(n, 7)}")


def _base62(n, width):
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = digits[r] + out
    return out.rjust(width, "0")


def _ts(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _bool(flag):
    return "true" if flag else "false"


def _logit(p):
    return math.log(p / (1 - p))


def _chance(logit):
    return 1 / (1 + math.exp(-logit))


@dataclass(frozen=True)
class HiddenRules:
    """Every rule by which the sample generator decides which deals are won and how fast they move:
    the one place that knows (no forecast reads it; the tests and the ablation vary it by seed).

    Effects on the log-odds of winning, added up per deal (its "lift"): each seller's skill and each
    account hierarchy's habit of buying (normal, with these spreads), the stakeholder roles on the deal,
    and two effects no forecast can see, since the graph holds nothing of them: the deal's lead source,
    and one bad quarter in which every deal still open does worse (a budget freeze). A deal with a
    higher lift also moves through the stages faster (``speed``)."""

    seller_skill_sd: float
    buying_habit_sd: float
    economic_buyer: float
    champion: float
    decision_maker: float
    per_stakeholder: float
    lead_source: dict
    bad_quarter: int  # quarters before the as-of date (1: the one before the as-of date's quarter)
    bad_quarter_lift: float
    speed: float
    loss_hazard: float
    slip_hazard: float
    final_win: float

    def stakeholder_lift(self, roles, people):
        return (self.economic_buyer * ("Economic Buyer" in roles) + self.champion * ("Champion" in roles)
                + self.decision_maker * ("Decision Maker" in roles) + self.per_stakeholder * (people - 2))


def hidden_rules(seed=DEFAULT_SEED, stakeholder_signal=True):
    """The generator's :class:`HiddenRules` for a seed: each weight drawn from a range, so each seed's
    sample is a different world. With ``stakeholder_signal`` false the stakeholder roles carry nothing."""
    draw = random.Random(f"{seed}/rules")
    roles = (draw.uniform(0.8, 1.6), draw.uniform(0.4, 1.0), draw.uniform(0.2, 0.7), draw.uniform(0.0, 0.3))
    if not stakeholder_signal:
        roles = (0.0, 0.0, 0.0, 0.0)
    return HiddenRules(
        seller_skill_sd=draw.uniform(0.5, 1.0), buying_habit_sd=draw.uniform(0.6, 1.1),
        economic_buyer=roles[0], champion=roles[1], decision_maker=roles[2], per_stakeholder=roles[3],
        lead_source={source: draw.uniform(-0.5, 0.5) for source in LEAD_SOURCES},
        bad_quarter=draw.randint(2, 5), bad_quarter_lift=-draw.uniform(0.3, 0.9),
        speed=draw.uniform(0.15, 0.35), loss_hazard=draw.uniform(0.04, 0.08), slip_hazard=draw.uniform(0.02, 0.04),
        final_win=draw.uniform(0.65, 0.85))


def build_sample(opportunities=DEFAULT_OPPORTUNITIES, seed=DEFAULT_SEED, as_of=SAMPLE_AS_OF,
                 stakeholder_signal=True):
    """The sample export as a dict of file name -> list of row dicts.

    Whether a deal is won depends on things the CRM's stage probability does not see: the
    owner's skill, how the customer's account hierarchy buys, and (unless
    ``stakeholder_signal`` is false) which roles its stakeholders hold. So a forecast that
    reads the graph can beat the stage probability; with ``stakeholder_signal=False`` the
    stakeholders are drawn the same way but carry no information about the outcome."""
    rng = random.Random(seed)
    hidden = random.Random(f"{seed}/hidden")  # the generator's hidden factors, drawn apart
    rules = hidden_rules(seed, stakeholder_signal)
    new_id = _Ids(rng)
    rows = {name: [] for name in TABLES}
    org_start = datetime.combine(as_of - timedelta(days=900), time(9))
    stamp = _ts(datetime.combine(as_of, time(6)))

    def when(days_before_as_of):
        return datetime.combine(as_of, time(0)) - timedelta(days=days_before_as_of) + timedelta(
            minutes=rng.randrange(8 * 60, 18 * 60))

    # roles (teams): CEO > VP Sales > regional directors > team managers; reps sit in the team roles
    def role(name, parent):
        rid = new_id("00E")
        rows["UserRole.csv"].append({"Id": rid, "Name": name, "ParentRoleId": parent or "",
                                     "DeveloperName": "".join(c for c in name.title() if c.isalnum()),
                                     "RollupDescription": name, "LastModifiedDate": _ts(org_start),
                                     "SystemModstamp": _ts(org_start)})
        return rid

    ceo_role = role("CEO", None)
    vp_role = role("VP Sales", ceo_role)
    # territories: Global > region > sub-region
    model_id, type_id = new_id("0MA"), new_id("0M5")

    def territory(name, parent):
        tid = new_id("0MI")
        rows["Territory2.csv"].append({"Id": tid, "Name": name, "DeveloperName": name.replace(" & ", "_").replace(" ", "_"),
                                       "ParentTerritory2Id": parent or "", "Territory2ModelId": model_id,
                                       "Territory2TypeId": type_id, "Description": f"{name} sales territory",
                                       "LastModifiedDate": _ts(org_start), "SystemModstamp": _ts(org_start)})
        return tid

    users = []

    def user(first, last, title, role_id, manager):
        uid = new_id("005")
        name = f"{first} {last}"
        handle = f"{first}.{last}".lower().replace("'", "").replace("ü", "ue")
        rows["User.csv"].append({"Id": uid, "Username": f"{handle}@example.com.sample", "FirstName": first,
                                 "LastName": last, "Name": name, "Email": f"{handle}@example.com", "Title": title,
                                 "Department": "Sales", "IsActive": _bool(rng.random() > 0.04),
                                 "UserRoleId": role_id, "ManagerId": manager or "",
                                 "CreatedDate": _ts(org_start), "LastModifiedDate": _ts(org_start),
                                 "SystemModstamp": _ts(org_start)})
        users.append(uid)
        return uid

    people = iter(rng.sample([(f, l) for f in FIRST for l in LAST], 400))
    ceo = user(*next(people), "Chief Executive Officer", ceo_role, None)
    vp = user(*next(people), "VP Sales", vp_role, ceo)
    world = territory("Global", None)
    reps = []  # (user id, territory id)
    for region, subregions in REGIONS.items():
        director_role = role(f"{region} Sales Director", vp_role)
        director = user(*next(people), f"{region} Sales Director", director_role, vp)
        region_t = territory(region, world)
        for sub in subregions:
            team_role = role(f"{sub} Sales Team", director_role)
            sub_t = territory(sub, region_t)
            manager = user(*next(people), f"{sub} Sales Manager", team_role, director)
            for _ in range(rng.randint(2, 3)):
                rep = user(*next(people), rng.choice(["Account Executive", "Senior Account Executive"]),
                           team_role, manager)
                reps.append((rep, sub_t, sub))
                rows["UserTerritory2Association.csv"].append({
                    "Id": new_id("0R0"), "UserId": rep, "Territory2Id": sub_t, "RoleInTerritory2": "Owner",
                    "IsActive": "true", "LastModifiedDate": _ts(org_start), "SystemModstamp": _ts(org_start)})
            rows["UserTerritory2Association.csv"].append({
                "Id": new_id("0R0"), "UserId": manager, "Territory2Id": sub_t, "RoleInTerritory2": "Sales Manager",
                "IsActive": "true", "LastModifiedDate": _ts(org_start), "SystemModstamp": _ts(org_start)})

    # opportunity stages
    for order, (label, prob, category, closed, won) in enumerate(STAGES, start=1):
        rows["OpportunityStage.csv"].append({
            "Id": new_id("01J"), "MasterLabel": label, "ApiName": label, "IsActive": "true", "SortOrder": order,
            "IsClosed": _bool(closed), "IsWon": _bool(won), "ForecastCategory": FORECAST_API[category],
            "ForecastCategoryName": category, "DefaultProbability": prob,
            "Description": f"Standard stage {label}", "LastModifiedDate": _ts(org_start),
            "SystemModstamp": _ts(org_start)})

    # accounts in hierarchies: group parents, subsidiaries, and their divisions
    accounts = []  # (id, rep, territory, subregion)
    n_groups = max(3, opportunities // 12)
    names = set()

    def company_name():
        for attempt in range(1, 10**9):
            name = f"{rng.choice(NAME_A)} {rng.choice(NAME_B)}"
            if attempt > 20:  # the plain names are used up: number them
                name = f"{name} {len(names) + 1}"
            if name not in names:
                names.add(name)
                return name

    def account(name, parent, rep_info, kind):
        aid = new_id("001")
        rep, terr, sub = rep_info
        created = when(rng.randint(400, 880))
        rows["Account.csv"].append({
            "Id": aid, "IsDeleted": "false", "Name": name, "Type": kind, "ParentId": parent or "",
            "BillingCity": "", "BillingCountry": COUNTRIES[sub], "Industry": rng.choice(INDUSTRIES),
            "AnnualRevenue": rng.randrange(5, 5000) * 1_000_000, "NumberOfEmployees": rng.randrange(50, 90000),
            "OwnerId": rep, "CreatedDate": _ts(created), "LastModifiedDate": _ts(created),
            "SystemModstamp": _ts(created)})
        accounts.append((aid, rep_info))
        return aid

    for _ in range(n_groups):
        rep_info = rng.choice(reps)
        base = company_name()
        top = account(f"{base} {rng.choice(SUFFIX)}", None, rep_info, rng.choice(["Customer", "Prospect"]))
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            sub_rep = rng.choice(reps) if rng.random() < 0.3 else rep_info
            child = account(f"{base} {COUNTRIES[sub_rep[2]]}", top, sub_rep, "Customer")
            for d in range(rng.choice([0, 0, 1, 2])):
                grandchild = account(f"{base} {COUNTRIES[sub_rep[2]]} {rng.choice(PRODUCTS)} Division {d + 1}",
                                     child, sub_rep, "Customer")
                if rng.random() < 0.3:
                    account(f"{base} {COUNTRIES[sub_rep[2]]} Plant {d + 1}", grandchild, sub_rep, "Customer")

    account_names = {row["Id"]: row["Name"] for row in rows["Account.csv"]}
    # hidden factors on the log-odds of winning: each seller's skill, each account hierarchy's
    # habit of buying (shared by a top parent and its subsidiaries)
    skill = {rep: hidden.gauss(0, rules.seller_skill_sd) for rep, _, _ in reps}
    parent_of = {row["Id"]: row["ParentId"] for row in rows["Account.csv"]}

    def top_of(aid):
        while parent_of.get(aid):
            aid = parent_of[aid]
        return aid

    habit = {aid: hidden.gauss(0, rules.buying_habit_sd) for aid in account_names if not parent_of[aid]}
    bad_start, bad_end = quarter_back(as_of, rules.bad_quarter)
    # contacts with reporting lines
    contacts_of = {}
    for aid, _ in accounts:
        ids = []
        for i in range(rng.randint(2, 5)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            cid = new_id("003")
            created = when(rng.randint(300, 800))
            rows["Contact.csv"].append({
                "Id": cid, "IsDeleted": "false", "AccountId": aid, "FirstName": first, "LastName": last,
                "Name": f"{first} {last}", "Title": TITLES[i % len(TITLES)] if i < 2 else rng.choice(TITLES),
                "Email": f"{first}.{last}.{cid[-5:]}@example.org".lower().replace("'", ""),
                "ReportsToId": ids[0] if ids and i > 0 else "", "OwnerId": rng.choice(users),
                "CreatedDate": _ts(created), "LastModifiedDate": _ts(created), "SystemModstamp": _ts(created)})
            ids.append(cid)
        contacts_of[aid] = ids

    # opportunities over the last seven quarters and into the next two
    for n in range(opportunities):
        aid, (rep, terr, _sub) = rng.choice(accounts)
        created_days_ago = min(rng.randint(5, 640), rng.randint(5, 640))
        created = when(created_days_ago)
        cycle = rng.randint(30, 200)
        close = created.date() + timedelta(days=cycle)
        amount = round(rng.lognormvariate(10.6, 0.9), -2) + 1000
        product = rng.choice(PRODUCTS)
        # stakeholders: one to four contacts of the account, exactly one primary (drawn before the
        # deal runs, from a generator of their own)
        people = random.Random(f"{seed}/people/{n}")
        chosen = people.sample(contacts_of[aid], k=min(len(contacts_of[aid]), people.randint(1, 4)))
        roles = people.sample(CONTACT_ROLES, k=len(chosen))
        source = rng.choice(LEAD_SOURCES)
        lift = skill[rep] + habit[top_of(aid)] + rules.stakeholder_lift(roles, len(chosen)) + \
            rules.lead_source[source]
        history = []
        stage_index = 0
        moment = created
        slipped = 0
        outcome = None
        # walk the stages until the deal closes or reaches today
        while True:
            label, prob, category, _, _ = OPEN_STAGES[stage_index]
            history.append((moment, label, amount, close, prob, category))
            # deals that go well also move faster
            step = timedelta(days=rng.randint(4, 28) * math.exp(-rules.speed * lift), hours=rng.randint(0, 8))
            moment += step
            if moment.date() >= as_of:
                break
            if moment.date() > close and rng.random() < 0.6:  # the deal slips
                close = close + timedelta(days=rng.choice([30, 45, 60, 90]))
                slipped += 1
                if rng.random() < 0.5:
                    amount = round(amount * rng.uniform(0.7, 1.2), -2)
                history.append((moment, label, amount, close, prob, category))
                continue
            freeze = rules.bad_quarter_lift if bad_start <= moment.date() < bad_end else 0.0
            lose = rng.random() < _chance(_logit(rules.loss_hazard + rules.slip_hazard * slipped) - lift - freeze)
            if lose or (moment.date() > close and rng.random() < 0.2):
                outcome = "Closed Lost"
            elif stage_index == len(OPEN_STAGES) - 1:
                outcome = "Closed Won" if rng.random() < _chance(_logit(rules.final_win) + lift + freeze) else "Closed Lost"
            if outcome:
                close = moment.date()
                won = outcome == "Closed Won"
                history.append((moment, outcome, amount, close, 100 if won else 0, "Closed" if won else "Omitted"))
                break
            stage_index += rng.choice([1, 1, 1, 2]) if stage_index < len(OPEN_STAGES) - 2 else 1
            stage_index = min(stage_index, len(OPEN_STAGES) - 1)
        last_moment, label, amount, close, prob, category = history[-1]
        closed = outcome is not None
        won = outcome == "Closed Won"
        if not closed and rng.random() < 0.12:
            prob = min(100, max(5, prob + rng.choice([-20, -10, 10, 15])))  # seller overrides the stage default
            category = "Commit" if prob >= 75 else category
        oid = new_id("006")
        steps = random.Random(f"{seed}/{oid}")  # its own generator: the other columns do not change
        next_step = steps.choice(NEXT_STEPS) if not closed and steps.random() < 0.7 else ""
        loss_reason = "" if not closed or won or steps.random() < 0.15 else \
            steps.choice(["Timing", "NoDecision"]) if slipped and steps.random() < 0.5 else steps.choice(LOSS_REASONS)
        quarter = (close.month - 1) // 3 + 1
        rows["Opportunity.csv"].append({
            "Id": oid, "IsDeleted": "false", "AccountId": aid,
            "Name": f"{account_names[aid]} - {product} - {close:%B %Y}",
            "StageName": label, "Amount": f"{amount:.2f}", "Probability": prob, "CloseDate": close.isoformat(),
            "Type": rng.choice(["New Business", "New Business", "Existing Business - Upgrade",
                                "Existing Business - Renewal"]),
            "NextStep": next_step,
            "LeadSource": source, "IsClosed": _bool(closed), "IsWon": _bool(won),
            "ForecastCategory": FORECAST_API[category], "ForecastCategoryName": category,
            "CurrencyIsoCode": "USD", "OwnerId": rep, "Territory2Id": terr, "CreatedDate": _ts(created),
            "LastModifiedDate": _ts(last_moment), "SystemModstamp": _ts(last_moment),
            "FiscalQuarter": quarter, "FiscalYear": close.year, "Loss_Reason__c": loss_reason})
        for moment, h_label, h_amount, h_close, h_prob, h_cat in history:
            rows["OpportunityHistory.csv"].append({
                "Id": new_id("008"), "OpportunityId": oid, "CreatedById": rep, "CreatedDate": _ts(moment),
                "StageName": h_label, "Amount": f"{h_amount:.2f}",
                "ExpectedRevenue": f"{h_amount * h_prob / 100:.2f}", "CloseDate": h_close.isoformat(),
                "Probability": h_prob, "ForecastCategory": FORECAST_API[h_cat], "IsDeleted": "false",
                "SystemModstamp": _ts(moment)})
        for i, (cid, role_name) in enumerate(zip(chosen, roles)):
            rows["OpportunityContactRole.csv"].append({
                "Id": new_id("00K"), "OpportunityId": oid, "ContactId": cid, "Role": role_name,
                "IsPrimary": _bool(i == 0), "IsDeleted": "false", "CreatedDate": _ts(created),
                "LastModifiedDate": _ts(created), "SystemModstamp": _ts(created)})
    for table in ("UserRole.csv", "User.csv", "Territory2.csv", "UserTerritory2Association.csv",
                  "OpportunityStage.csv"):
        for row in rows[table]:
            if "SystemModstamp" in row:
                row["SystemModstamp"] = row["LastModifiedDate"] = stamp
    _more_tables(rows, random.Random(f"{seed}/more"), _Ids(random.Random(f"{seed}/more-ids"), 1), stamp)
    _account_details(rows["Account.csv"], random.Random(f"{seed}/addresses"))
    _deal_tables(rows, random.Random(f"{seed}/deals"), _Ids(random.Random(f"{seed}/deal-ids"), 2), stamp, as_of)
    return rows


CITIES = {
    "United States": ["Seattle", "Boston", "Austin", "Chicago", "Denver"], "Canada": ["Toronto", "Vancouver"],
    "Brazil": ["Sao Paulo", "Curitiba"], "United Kingdom": ["London", "Leeds", "Bristol"],
    "Germany": ["Munich", "Hamburg", "Cologne"], "France": ["Paris", "Lyon"], "Sweden": ["Stockholm", "Malmo"],
    "Australia": ["Sydney", "Melbourne"], "Japan": ["Tokyo", "Osaka"], "India": ["Bengaluru", "Pune"],
    "Singapore": ["Singapore"],
}
STREETS = ["Market", "Harbour", "Station", "Mill", "Church", "Park", "King", "Queen", "Lake", "Bridge"]


def _number(text, digits=10):
    """A stable HubSpot-like numeric id made from a Salesforce Id."""
    return str(int(hashlib.sha1(text.encode()).hexdigest(), 16) % 10 ** digits).rjust(digits, "1")


def _domain(name):
    stem = "".join(c for c in name.lower().split(" ")[0] if c.isalnum())
    return f"{stem}-{_number(name, 4)}.example.com"


def lei_for(name):
    """A well-formed (ISO 17442 check digits) but invented LEI for a company (by its Salesforce Id)."""
    body = "5493" + "00" + "".join("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"[b % 34] for b in
                                   hashlib.sha1(name.encode()).digest()[:12])
    number = int("".join(str(int(c, 36)) for c in body + "00"))
    return body + f"{98 - number % 97:02d}"


def _account_details(accounts, rng):
    """Addresses and identifiers for the accounts, from a generator of their own (the other columns
    do not change): billing address, website (7 in 10), D-U-N-S Number (6 in 10) and the LEI
    custom field (1 in 7), as a CRM holds them: often incomplete."""
    for a in accounts:
        country = a["BillingCountry"]
        a["BillingCity"] = rng.choice(CITIES.get(country, ["Springfield"]))
        a["BillingStreet"] = f"{rng.randint(1, 480)} {rng.choice(STREETS)} Street"
        a["BillingPostalCode"] = (f"{rng.choice('ENSW')}{rng.choice('CW')}{rng.randint(1, 9)} {rng.randint(1, 9)}"
                                  f"{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}" if country == "United Kingdom"
                                  else f"{rng.randint(10000, 99999)}")
        if rng.random() < 0.1:  # an address half filled in
            a["BillingStreet"] = a["BillingPostalCode"] = ""
        a["Website"] = "https://www." + _domain(a["Name"]) if rng.random() < 0.7 else ""
        a["DunsNumber"] = _number("duns:" + a["Id"], 9) if rng.random() < 0.6 else ""
        a["LEI__c"] = lei_for(a["Id"]) if rng.random() < 1 / 7 else ""


def _more_tables(rows, rng, new_id, stamp):
    """Field history, account territories and account-contact relations, derived from the
    other tables with generators of their own (so adding them changed no other file)."""
    previous = {}
    kinds = {"StageName": "Picklist", "Amount": "Currency", "CloseDate": "Date"}
    for h in rows["OpportunityHistory.csv"]:
        before = previous.get(h["OpportunityId"])
        previous[h["OpportunityId"]] = h
        if before is None:
            continue
        for field, kind in kinds.items():
            if before[field] != h[field]:
                rows["OpportunityFieldHistory.csv"].append({
                    "Id": new_id("017"), "OpportunityId": h["OpportunityId"], "CreatedById": h["CreatedById"],
                    "CreatedDate": h["CreatedDate"], "Field": field, "DataType": kind,
                    "OldValue": before[field], "NewValue": h[field], "IsDeleted": "false"})
    territory_of = {}
    for a in rows["UserTerritory2Association.csv"]:
        territory_of.setdefault(a["UserId"], a["Territory2Id"])
    for account in rows["Account.csv"]:
        territory = territory_of.get(account["OwnerId"])
        if territory:
            rows["ObjectTerritory2Association.csv"].append({
                "Id": new_id("0R0"), "ObjectId": account["Id"], "Territory2Id": territory,
                "AssociationCause": rng.choice(["Territory2Manual", "Territory2AssignmentRule"]),
                "SobjectType": "Account", "IsDeleted": "false", "LastModifiedDate": stamp, "SystemModstamp": stamp})
    accounts = [a["Id"] for a in rows["Account.csv"]]
    for contact in rows["Contact.csv"]:
        related = [(contact["AccountId"], True)]
        if rng.random() < 0.15:  # a contact who also works with another account
            other = rng.choice(accounts)
            if other != contact["AccountId"]:
                related.append((other, False))
        for account_id, direct in related:
            roles = rng.sample(["Decision Maker", "Economic Buyer", "Influencer", "Technical Buyer",
                                "Business User"], k=rng.choice([0, 1, 1, 2]))
            ended = not direct and rng.random() < 0.3
            rows["AccountContactRelation.csv"].append({
                "Id": new_id("07k"), "AccountId": account_id, "ContactId": contact["Id"], "Roles": ";".join(roles),
                "IsDirect": _bool(direct), "IsActive": _bool(not ended),
                "StartDate": contact["CreatedDate"][:10], "EndDate": "2026-06-30" if ended else "",
                "IsDeleted": "false", "LastModifiedDate": contact["LastModifiedDate"],
                "SystemModstamp": contact["SystemModstamp"]})


def _deal_tables(rows, rng, new_id, stamp, as_of):
    """Products and line items, competitors, fiscal quarters and quotas, derived from the
    other tables with generators of their own (so adding them changed no other file)."""
    products = {}
    for name in PRODUCTS:
        products[name] = new_id("01t")
        rows["Product2.csv"].append({
            "Id": products[name], "Name": name, "ProductCode": name.upper().replace(" ", "-"),
            "Family": PRODUCT_FAMILIES[name], "IsActive": "true", "Description": f"{name} subscription",
            "LastModifiedDate": stamp, "SystemModstamp": stamp})
    for deal in rows["Opportunity.csv"]:
        product = deal["Name"].split(" - ")[-2]
        amount = Decimal(deal["Amount"])
        # the deal's amount is its line items' total: the main product, sometimes support on top
        lines = [(product, amount)]
        if product != "Support Plus" and amount >= 20000 and rng.random() < 0.3:
            support = (amount / 5).quantize(Decimal("100"))
            lines = [(product, amount - support), ("Support Plus", support)]
        for name, total in lines:
            quantity = rng.choice([1, 2, 4, 5, 10])
            rows["OpportunityLineItem.csv"].append({
                "Id": new_id("00k"), "OpportunityId": deal["Id"], "Product2Id": products[name],
                "Quantity": quantity, "UnitPrice": f"{total / quantity:.2f}", "TotalPrice": f"{total:.2f}",
                "IsDeleted": "false", "CreatedDate": deal["CreatedDate"], "LastModifiedDate": deal["CreatedDate"],
                "SystemModstamp": deal["CreatedDate"]})
        for name in rng.sample(COMPETITORS, k=rng.choice([0, 0, 1, 1, 2])):
            rows["OpportunityCompetitor.csv"].append({
                "Id": new_id("00J"), "OpportunityId": deal["Id"], "CompetitorName": name,
                "Strengths": rng.choice(["Price", "Incumbent", "Features", ""]),
                "Weaknesses": rng.choice(["Support", "Integration", "Price", ""]), "IsDeleted": "false",
                "CreatedDate": deal["CreatedDate"], "LastModifiedDate": deal["CreatedDate"],
                "SystemModstamp": deal["CreatedDate"]})
    # fiscal quarters (the calendar year) from two years back to one year ahead, and a quota per
    # active seller who owns deals, for each quarter up to the next one
    periods = {}
    for year in range(as_of.year - 2, as_of.year + 2):
        for quarter in range(1, 5):
            start = date(year, 3 * quarter - 2, 1)
            end = (date(year + quarter // 4, 3 * quarter % 12 + 1, 1)) - timedelta(days=1)
            periods[start] = new_id("026")
            rows["Period.csv"].append({
                "Id": periods[start], "Type": "Quarter", "StartDate": start.isoformat(), "EndDate": end.isoformat(),
                "Number": quarter, "QuarterLabel": "", "PeriodLabel": "", "IsForecastPeriod": "true",
                "FiscalYearSettingsId": "022Ec0000000001AAA", "SystemModstamp": stamp})
    sellers = sorted({d["OwnerId"] for d in rows["Opportunity.csv"]})
    this_quarter = quarter_of(as_of)[0]
    # a quota near what the seller has won a quarter over the last four full quarters (two thirds
    # to four thirds of it), so attainment looks as it does in a real org at any size of sample
    won = dict.fromkeys(sellers, Decimal(0))
    year_back = date(this_quarter.year - 1, this_quarter.month, 1)
    for deal in rows["Opportunity.csv"]:
        if deal["IsWon"] == "true" and year_back <= date.fromisoformat(deal["CloseDate"]) < this_quarter:
            won[deal["OwnerId"]] += Decimal(deal["Amount"] or 0)
    for seller in sellers:
        share = Decimal(rng.choice([50, 60, 75, 90, 100])) / 75
        base = max(Decimal(10000), (won[seller] / 4 * share / 1000).quantize(Decimal(1)) * 1000)
        for start in sorted(periods):
            if start.year >= as_of.year - 1 and start <= this_quarter + timedelta(days=92):
                rows["ForecastingQuota.csv"].append({
                    "Id": new_id("0J9"), "QuotaOwnerId": seller, "QuotaAmount": f"{base:.2f}",
                    "StartDate": start.isoformat(), "PeriodId": periods[start],
                    "ForecastingTypeId": "0DbEc0000000001AAA", "CurrencyIsoCode": "USD", "IsQuantity": "false",
                    "LastModifiedDate": stamp, "SystemModstamp": stamp})


def write_sample(out_dir, opportunities=DEFAULT_OPPORTUNITIES, seed=DEFAULT_SEED, as_of=SAMPLE_AS_OF,
                 stakeholder_signal=True):
    """Write the sample export into ``out_dir`` and return the row count per file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in build_sample(opportunities, seed, as_of, stakeholder_signal).items():
        with open(out / name, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=TABLES[name], lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
        counts[name] = len(rows)
    return counts


#: the tables whose rows belong to one deal, by the column naming it
DEAL_PARTS = {"OpportunityHistory.csv": "OpportunityId", "OpportunityFieldHistory.csv": "OpportunityId",
              "OpportunityContactRole.csv": "OpportunityId", "OpportunityLineItem.csv": "OpportunityId",
              "OpportunityCompetitor.csv": "OpportunityId"}
CLOSED_STAGES = {"Closed Won": True, "Closed Lost": False}


def export_as_of(rows, day):
    """The export the org of ``rows`` (a sample built as of a later day) would have given at the end of
    ``day``: the records created by then, the history recorded by then, and each deal as its last
    history row by then says (stage, amount, close date, probability, forecast category, open, won)."""
    end = _ts(datetime.combine(day, time(23, 59, 59)))
    stamp = _ts(datetime.combine(day, time(6)))
    out = {}
    for name, table in rows.items():
        out[name] = [dict(r) for r in table if r.get("CreatedDate", "")[:19] <= end[:19]]
    deals = {d["Id"] for d in out["Opportunity.csv"]}
    for name, column in DEAL_PARTS.items():
        out[name] = [r for r in out[name] if r[column] in deals]
    def latest(history):
        last = {}
        for h in history:
            if h["OpportunityId"] not in last or h["CreatedDate"] >= last[h["OpportunityId"]]["CreatedDate"]:
                last[h["OpportunityId"]] = h
        return last

    last, final = latest(out["OpportunityHistory.csv"]), latest(rows["OpportunityHistory.csv"])
    labels = {api: label for label, api in FORECAST_API.items()}
    for deal in out["Opportunity.csv"]:
        h = last.get(deal["Id"])
        if h is None or h is final.get(deal["Id"]) or h == final.get(deal["Id"]):
            continue  # nothing of its history after the day: the deal as the sample has it
        closed = h["StageName"] in CLOSED_STAGES
        won = CLOSED_STAGES.get(h["StageName"], False)
        close = date.fromisoformat(h["CloseDate"])
        changed = h["CreatedDate"] != deal["LastModifiedDate"]
        deal.update({"StageName": h["StageName"], "Amount": h["Amount"], "CloseDate": h["CloseDate"],
                     "Probability": h["Probability"], "ForecastCategory": h["ForecastCategory"],
                     "ForecastCategoryName": labels.get(h["ForecastCategory"], h["ForecastCategory"]),
                     "IsClosed": _bool(closed), "IsWon": _bool(won), "FiscalQuarter": (close.month - 1) // 3 + 1,
                     "FiscalYear": close.year})
        if changed:
            deal["LastModifiedDate"] = deal["SystemModstamp"] = h["CreatedDate"]
            if not closed or won:
                deal["Loss_Reason__c"] = ""
            if closed:
                deal["NextStep"] = ""
    for table in out.values():  # nothing is modified after the day the export was taken
        for row in table:
            for column in ("SystemModstamp", "LastModifiedDate"):
                if row.get(column, "")[:19] > end[:19]:
                    row[column] = stamp
    return out


def write_weekly_samples(out_dir, weeks, opportunities=DEFAULT_OPPORTUNITIES, seed=DEFAULT_SEED,
                         as_of=SAMPLE_AS_OF, stakeholder_signal=True):
    """A series of weekly exports of one org, ending on ``as_of``: ``out_dir/week-YYYY-MM-DD/`` for each
    week, each what the org's CRM held at the end of that day (:func:`export_as_of`): new deals, stage
    moves, slipped close dates, changed amounts, wins and losses, and each week's history rows, with the
    same Ids throughout. Returns {folder name: rows per file}."""
    rows = build_sample(opportunities, seed, as_of, stakeholder_signal)
    out = Path(out_dir)
    written = {}
    for k in range(weeks):
        day = as_of - timedelta(days=7 * (weeks - 1 - k))
        folder = out / f"week-{day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        counts = {}
        for name, table in export_as_of(rows, day).items():
            with open(folder / name, "w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=TABLES[name], lineterminator="\r\n")
                writer.writeheader()
                writer.writerows(table)
            counts[name] = len(table)
        written[folder.name] = counts
    return written
