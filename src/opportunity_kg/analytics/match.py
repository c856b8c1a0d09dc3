"""One customer across systems and legal entities: matching CRM accounts to GLEIF legal
entities, and the same customer's records in different CRMs to each other.

:func:`match_store` reads the accounts (every system's) and the legal entities of a
store, finds the links, and writes them, replacing earlier ones, into one graph of
the store (:data:`MATCH_GRAPH`), which is part of the default dataset:

- an account to a legal entity (``okg:legalEntity``): by an LEI the account carries
  (confidence 1), else by legal name, normalised (case, accents, punctuation, "&" and
  "and", legal-form words such as Inc, GmbH, S.A., Ltd dropped), and country;
- two accounts of different systems to each other (``okg:sameCustomerAs``): by a shared
  LEI or web domain (confidence 1), else by normalised name and country.

Every candidate gets an ``okg:EntityMatch`` record with its confidence, method and
evidence; only those at or above the threshold are asserted as links, the others are
listed for review (``okg:matchStatus "review"``) and returned. No pair is compared
unless the two share their rarest name word: the work grows with the data, not with
its square.
"""

import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher

import pyoxigraph as ox

from ..errors import OkgError
from ..store.history import MATCHES_GRAPH as MATCH_GRAPH
from ..vocabulary import OKG

#: the lowest confidence a link is asserted at; below it a candidate is listed for review
DEFAULT_THRESHOLD = 0.9
#: candidates below this confidence are not even listed
REVIEW_FLOOR = 0.6
#: the match methods that are identifiers rather than names
IDENTIFIERS = ("external id", "lei", "duns", "domain")
#: the confidence of a pair sharing an identifier that other records of one of the systems share too
SHARED_IDENTIFIER = 0.8

#: legal-form words and abbreviations (after normalisation) that say nothing about which company it is
LEGAL_FORMS = {
    "inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc", "llp", "lp", "plc",
    "gmbh", "ag", "kg", "se", "sa", "sas", "sarl", "spa", "srl", "bv", "nv", "ab", "as", "asa", "oy", "oyj",
    "aps", "pty", "kk", "kabushiki", "kaisha", "gk", "pte", "sdn", "bhd", "ltda", "sab", "cv", "de", "the",
    "private", "pvt", "public",
}
COUNTRIES = {
    "united states": "US", "united states of america": "US", "usa": "US", "us": "US", "canada": "CA",
    "brazil": "BR", "mexico": "MX", "united kingdom": "GB", "uk": "GB", "great britain": "GB", "ireland": "IE",
    "germany": "DE", "deutschland": "DE", "france": "FR", "spain": "ES", "italy": "IT", "netherlands": "NL",
    "belgium": "BE", "switzerland": "CH", "austria": "AT", "sweden": "SE", "norway": "NO", "denmark": "DK",
    "finland": "FI", "poland": "PL", "portugal": "PT", "australia": "AU", "new zealand": "NZ", "japan": "JP",
    "china": "CN", "india": "IN", "singapore": "SG", "south korea": "KR", "korea": "KR", "hong kong": "HK",
    "south africa": "ZA", "israel": "IL", "united arab emirates": "AE", "argentina": "AR", "chile": "CL",
}


def normal_name(name):
    """A company name reduced to the words that tell companies apart: lower case, no accents or
    punctuation, "&" as "and", legal-form words dropped ("Müller & Söhne GmbH" -> "muller and sohne")."""
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode().lower()
    text = text.replace("&", " and ")
    text = re.sub(r"\b([a-z])\.(?=[a-z]\.)", r"\1", text)  # S.A. -> SA, K.K. -> KK
    text = re.sub(r"\b([a-z])\.", r"\1", text)
    words = re.findall(r"[a-z0-9]+", text)
    kept = [w for w in words if w not in LEGAL_FORMS]
    return " ".join(kept or words)


def country_code(text):
    """ISO 3166 alpha-2 for a country name or code (None when unknown)."""
    if not text:
        return None
    text = text.strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return COUNTRIES.get(text.lower())


@dataclass
class Party:
    """An account of some system, or a legal entity."""
    iri: str
    system: str
    name: str
    country: str | None
    lei: str | None = None
    domain: str | None = None
    duns: str | None = None
    city: str | None = None
    postcode: str | None = None
    synced: frozenset = frozenset()  # records of other systems this one names (okg:syncedWith)

    def __post_init__(self):
        self.key = normal_name(self.name)
        self.city = normal_name(self.city) or None if self.city else None
        self.postcode = re.sub(r"[\s-]", "", self.postcode).upper() or None if self.postcode else None


@dataclass
class Match:
    left: Party
    right: Party
    confidence: float
    method: str
    evidence: str

    def as_dict(self, threshold):
        return {"left": self.left.iri, "left_system": self.left.system, "left_name": self.left.name,
                "right": self.right.iri, "right_system": self.right.system, "right_name": self.right.name,
                "confidence": round(self.confidence, 3), "method": self.method, "evidence": self.evidence,
                "status": "asserted" if self.confidence >= threshold else "review"}


def _system(iri):
    match = re.match(r"https://w3id\.org/opportunity-kg/id/([^/]+)/", iri)
    return match.group(1) if match else "other"


def load_parties(store):
    """(accounts, legal entities) of a store."""
    from ..store import select_records

    query = f"""PREFIX okg: <{OKG}> PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
    SELECT ?s ?kind ?name ?country ?lei ?domain ?duns ?city ?postcode ?synced WHERE {{
      {{ ?s a okg:Account . BIND ("account" AS ?kind) OPTIONAL {{ ?s rdfs:label ?name }}
         OPTIONAL {{ ?s okg:accountLei ?lei }} OPTIONAL {{ ?s okg:syncedWith ?synced }} }}
      UNION {{ ?s a okg:LegalEntity . BIND ("entity" AS ?kind) OPTIONAL {{ ?s okg:legalName|rdfs:label ?name }}
         OPTIONAL {{ ?s okg:lei ?lei }} }}
      OPTIONAL {{ ?s okg:country|okg:jurisdiction ?country }}
      OPTIONAL {{ ?s okg:webDomain ?domain }}
      OPTIONAL {{ ?s okg:dunsNumber ?duns }}
      OPTIONAL {{ ?s okg:city ?city }}
      OPTIONAL {{ ?s okg:postalCode ?postcode }}
    }}"""
    accounts, entities, synced = {}, {}, defaultdict(set)
    for r in select_records(store, query, timeout=600):
        target = accounts if r["kind"] == "account" else entities
        if r["synced"]:
            synced[r["s"]].add(r["synced"])
        if r["s"] not in target and r["name"]:
            lei = (r["lei"] or "").strip().upper()
            duns = r["duns"] if r["duns"] and re.fullmatch(r"\d{9}", r["duns"]) else None
            target[r["s"]] = Party(r["s"], _system(r["s"]) if r["kind"] == "account" else "gleif", r["name"],
                                   country_code(r["country"]), lei if re.fullmatch(r"[A-Z0-9]{20}", lei) else None,
                                   (r["domain"] or "").lower().removeprefix("www.") or None, duns,
                                   r["city"], r["postcode"])
    for iri, names in synced.items():
        if iri in accounts:
            accounts[iri].synced = frozenset(names)
    return list(accounts.values()), list(entities.values())


#: a name word carried by more records than this is too common to block on (unless it is a record's rarest)
MAX_BLOCK = 100


def _by_name(lefts, rights):
    """Candidate pairs by name and country. A pair is compared only when the two names share a word
    that is not common (or the rarer side's rarest word), and the closer look (character similarity)
    only when their words overlap enough: the work grows with the data, not with its square."""
    frequency = defaultdict(int)
    for party in rights:
        for word in set(party.key.split()):
            frequency[word] += 1
    index = defaultdict(list)
    for party in rights:
        words = set(party.key.split())
        rarest = min(words, key=lambda w: (frequency[w], w)) if words else None
        for word in words:
            if frequency[word] <= MAX_BLOCK or word == rarest:
                index[word].append(party)
    out = []
    for left in lefts:
        seen = set()
        left_words = set(left.key.split())
        for word in left_words:
            for right in index.get(word, ()):
                if right.iri in seen or right.system == left.system:  # two records of one system: not here
                    continue
                seen.add(right.iri)
                right_words = set(right.key.split())
                overlap = len(left_words & right_words) / len(left_words | right_words)
                if overlap < 0.5:
                    continue
                score = (overlap + SequenceMatcher(None, left.key, right.key).ratio()) / 2
                if left.country and right.country:
                    score = score if left.country == right.country else score * 0.5
                else:
                    score *= 0.9  # a country missing on one side: a little less sure
                score, place = _address(left, right, score)
                if score >= REVIEW_FLOOR:
                    evidence = f"name {left.name!r} ~ {right.name!r} (normalised {left.key!r} / {right.key!r})"
                    evidence += f", country {left.country or '?'} / {right.country or '?'}" + place
                    method = "name, country and address" if place else "name and country"
                    out.append(Match(left, right, min(score, 0.99), method, evidence))
    return out


#: how much of the gap to certainty the same postal code (or, without one, the same city) closes
SAME_POSTCODE, SAME_CITY = 0.5, 0.25
#: what a different postal code or city multiplies a name match's confidence by
OTHER_PLACE = 0.8


def _address(left, right, score):
    """A name match's confidence with the addresses weighed in, and the evidence they give: the same
    postal code (or, where one side has none, the same city) makes it surer, a different one less sure."""
    for attribute, label, gain in (("postcode", "postal code", SAME_POSTCODE), ("city", "city", SAME_CITY)):
        mine, theirs = getattr(left, attribute), getattr(right, attribute)
        if mine and theirs:
            if mine == theirs:
                return score + (1 - score) * gain, f", same {label} {mine}"
            return score * OTHER_PLACE, f", {label} {mine} / {theirs}"
    return score, ""


#: a runner-up this close to the best candidate makes a name match ambiguous
AMBIGUITY_MARGIN = 0.05
#: what an ambiguous match's confidence is multiplied by (so it falls to review)
AMBIGUITY_PENALTY = 0.85


def _ambiguous(match, runner, other):
    return Match(match.left, match.right, match.confidence * AMBIGUITY_PENALTY, match.method,
                 f"{match.evidence}; ambiguous: {other.name!r} <{other.iri}> is nearly as good ({runner.confidence:.2f})")


def _best(candidates):
    """The best candidate per (record, other side). It is ambiguous, its confidence lowered and the
    rival named in its evidence, when its runner-up is nearly as good, or when another record of the
    same system (a namesake) matches the same target nearly as well."""
    groups = defaultdict(list)
    for match in candidates:
        groups[(match.left.iri, match.right.system)].append(match)
    best = []
    for group in groups.values():
        group.sort(key=lambda m: (-m.confidence, m.right.iri))
        top = group[0]
        if len(group) > 1 and group[1].confidence >= top.confidence - AMBIGUITY_MARGIN:
            top = _ambiguous(top, group[1], group[1].right)
        best.append(top)
    # a target that two records of one system match about equally well (namesakes, such as two
    # accounts called alike) is ambiguous for every system: the namesakes may be two companies
    rivals = defaultdict(list)
    for match in candidates:
        rivals[(match.right.iri, match.left.system)].append(match)
    contested = {}
    for (target, _), group in rivals.items():
        group.sort(key=lambda m: -m.confidence)
        if len(group) > 1 and group[1].confidence >= group[0].confidence - AMBIGUITY_MARGIN:
            contested.setdefault(target, group[1] if group[0].left.iri != group[1].left.iri else group[0])
    out = []
    for match in best:
        rival = contested.get(match.right.iri)
        if rival is not None and match.confidence >= rival.confidence * AMBIGUITY_PENALTY:
            other = rival.left if rival.left.iri != match.left.iri else rivals[(match.right.iri, match.left.system)][0].left
            match = _ambiguous(match, rival, other)
        out.append(match)
    return out


def find_matches(accounts, entities):
    """Every candidate link with its confidence: each account to its best legal entity, and to its
    best record in each other system."""
    by_lei = {e.lei: e for e in entities if e.lei}
    links = {}
    for account in accounts:
        if account.lei and account.lei in by_lei:
            links[account.iri] = Match(account, by_lei[account.lei], 1.0, "LEI", f"both carry LEI {account.lei}")
    links.update((m.left.iri, m) for m in _best(_by_name([a for a in accounts if a.iri not in links], entities)))
    # the same customer in two systems: one record naming the other (a CRM integration's id), a
    # shared identifier, else the name
    pairs = {}
    by_iri = {a.iri: a for a in accounts}
    for account in accounts:
        for other in sorted(account.synced):
            if other in by_iri and by_iri[other].system != account.system:
                left, right = sorted((account, by_iri[other]), key=lambda p: p.iri)
                pairs.setdefault((left.iri, right.iri), Match(
                    left, right, 1.0, "external id", f"{account.system} record <{account.iri}> names <{other}> "
                                                     f"as the same company (synced)"))
    for key, label in (("lei", "LEI"), ("duns", "D-U-N-S Number"), ("domain", "web domain")):
        groups = defaultdict(list)
        for account in accounts:
            if getattr(account, key):
                groups[getattr(account, key)].append(account)
        for value, members in groups.items():
            per_system = defaultdict(int)
            for member in members:
                per_system[member.system] += 1
            # an identifier on several records of one system (a group sharing its website) does not
            # say which of them is which: those pairs go to review
            shared = [system for system, n in per_system.items() if n > 1]
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    if a.system != b.system:
                        left, right = sorted((a, b), key=lambda p: p.iri)
                        if shared:
                            match = Match(left, right, SHARED_IDENTIFIER, key,
                                          f"both carry {label} {value}, as do other records of {', '.join(shared)}")
                        else:
                            match = Match(left, right, 1.0, key, f"both carry {label} {value}")
                        known = pairs.get((left.iri, right.iri))
                        if known is None or known.confidence < match.confidence:
                            pairs[(left.iri, right.iri)] = match
    sure = [p for p in pairs.values() if p.confidence >= 1.0]
    found = {(p.left.iri, p.right.system) for p in sure} | {(p.right.iri, p.left.system) for p in sure}
    by_name = [m for m in _by_name(accounts, accounts) if (m.left.iri, m.right.system) not in found]
    for match in _best(by_name):
        left, right = sorted((match.left, match.right), key=lambda p: p.iri)
        known = pairs.get((left.iri, right.iri))
        if known is not None and known.method in IDENTIFIERS:  # a shared identifier that did not decide it
            if match.confidence > known.confidence:
                pairs[(left.iri, right.iri)] = Match(left, right, match.confidence, match.method,
                                                     f"{match.evidence}; {known.evidence}")
        elif known is None or match.confidence < known.confidence:  # an ambiguity seen from either side counts
            pairs[(left.iri, right.iri)] = Match(left, right, match.confidence, match.method, match.evidence)
    return list(links.values()) + list(pairs.values())


def _triples(matches, threshold):
    rdf = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
    out = []
    for m in matches:
        entity = m.right.system == "gleif"
        link = ox.NamedNode(OKG + ("legalEntity" if entity else "sameCustomerAs"))
        record = ox.NamedNode(f"{MATCH_GRAPH}/{hashlib.sha1(f'{m.left.iri} {m.right.iri}'.encode()).hexdigest()[:20]}")
        status = "asserted" if m.confidence >= threshold else "review"
        out += [(record, ox.NamedNode(rdf), ox.NamedNode(OKG + "EntityMatch")),
                (record, ox.NamedNode(OKG + "matchOf"), ox.NamedNode(m.left.iri)),
                (record, ox.NamedNode(OKG + "matchedWith"), ox.NamedNode(m.right.iri)),
                (record, ox.NamedNode(OKG + "confidence"), ox.Literal(f"{m.confidence:.3f}", datatype=ox.NamedNode(
                    "http://www.w3.org/2001/XMLSchema#decimal"))),
                (record, ox.NamedNode(OKG + "matchMethod"), ox.Literal(m.method)),
                (record, ox.NamedNode(OKG + "evidence"), ox.Literal(m.evidence)),
                (record, ox.NamedNode(OKG + "matchStatus"), ox.Literal(status))]
        if status == "asserted":
            out.append((ox.NamedNode(m.left.iri), link, ox.NamedNode(m.right.iri)))
    return out


def match_store(path, threshold=DEFAULT_THRESHOLD):
    """Match the accounts and legal entities of the store at ``path`` and write the links into
    :data:`MATCH_GRAPH` (replacing earlier ones) in one atomic swap. Returns the candidates as dicts
    (asserted and for review)."""
    from ..store import Loader, open_store, staged

    if not 0 < threshold <= 1:
        raise OkgError(f"the threshold is a confidence above 0 and at most 1, not {threshold}", field="threshold")
    open_store(path, create=False)  # names a missing store, or a folder that is not one
    with staged(path) as work:
        accounts, entities = load_parties(work.store)
        if not accounts:
            raise OkgError(f"the store at {path} has no accounts to match")
        matches = find_matches(accounts, entities)
        graph = ox.NamedNode(MATCH_GRAPH)
        if work.store.contains_named_graph(graph):
            work.store.remove_graph(graph)
        loader = Loader([(work.store, graph)])
        loader.add(_triples(matches, threshold))
        loader.close()
    return [m.as_dict(threshold) for m in sorted(matches, key=lambda m: (-m.confidence, m.left.iri))]
