"""Question → verified query + parameters, or "not confident" with the closest questions.

Order of work: refuse what must not be routed (why, write, compare...); take out the slots
(periods, numbers, owner, pipeline, stage names); score the remaining words against every
query's phrasings; keep only queries that can honour every slot; route when the best is
confident and clearly ahead of the rest. A wrong route is worse than none, so anything the
router cannot honour (an amount filter, a stage filter, a second period) leaves it unrouted.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from revtops_kernel.agent.routing.index import QueryIndex, content_words, default_index
from revtops_kernel.agent.routing.names import NameMatch, OwnerName, find_labels, find_owner
from revtops_kernel.agent.routing.periods import Period, find_periods
from revtops_kernel.agent.routing.quantities import Quantity, find_quantities, stray_numbers
from revtops_kernel.agent.routing.text import STOPWORDS, fold, normalize
from revtops_kernel.agent.verified import VERIFIED_QUERIES, resolve_params
from revtops_kernel.errors import VerifiedQueryError

MIN_CONFIDENCE = 0.45  # the score a route needs (see QueryIndex.scores)
MIN_MARGIN = 0.10  # ahead of the next query by at least this much
MAX_QUESTION_CHARS = 300  # longer questions are requests, not lookups

# Windows that look back (a future end is cut to today) or ahead (a past start moves to today).
LOOKS_BACK = {"win_rate", "win_rate_by_owner", "average_sales_cycle", "meetings_by_account",
              "rep_leaderboard", "pipeline_created", "stage_funnel", "sales_velocity",
              "pipeline_waterfall"}  # fmt: skip
LOOKS_AHEAD = {"deals_closing"}
# A name a query cannot filter on but shows per row (pipeline_created is broken down by
# pipeline, pipeline_by_stage by stage): the answer still holds it.
SHOWN_PER_ROW = {("pipeline_created", "pipeline"), ("pipeline_by_stage", "stage")}

_REFUSE = re.compile(
    r"\b(why|write|draft|compose|email to|send|summari[sz]e|explain|predict|recommend|"
    r"should (?:i|we|you)|what if|how (?:do|can|should) (?:i|we)|compare|compared|versus|vs|"
    r"sentiment|transcript|delete|update|change|remind|tell me about|"
    r"multi ?threaded)\b"  # the opposite of single_threaded_deals, which would list the rest
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_BUCKET = re.compile(
    r"\b(?:by|per|each|every|for each|broken down by|split by) (month|quarter|qtr|year)\b"
    r"|\b(monthly|quarterly|yearly|annually|annual)\b"
)
_GROUP = re.compile(
    r"\b(?:by|per|each|for each|across|for every) "
    r"(rep|owner|salesperson|seller|ae|pipeline|stage|team|deal type|company size|account size)"
    r"s?\b|\b(overall|in total|across the board)\b"
)
# A slot only one query takes says something about the question: its words count.
_SLOT_WORDS = {"min_meetings": ["meeting"], "max_contacts": ["contact", "engaged"],
               "limit": ["top"]}  # fmt: skip
# Queries with a row (or a column) per rep: the only ones a question about reps can go to.
REP_ROWS = {
    "win_rate_by_owner", "rep_leaderboard", "average_sales_cycle", "stalled_deals",
    "deals_without_activity", "single_threaded_deals", "deals_closing", "slipped_deals",
    "forecast_vs_quota", "sales_velocity", "pipeline_waterfall",
}  # fmt: skip
# Queries whose rows are already per owner, stage or pipeline ("by rep" is what they answer).
PER_ROW = {
    "owner": {"win_rate_by_owner", "rep_leaderboard"},
    "stage": {"pipeline_by_stage", "stage_funnel"},
    "pipeline": {"pipeline_by_stage", "pipeline_created"},
}


@dataclass(frozen=True)
class RouteContext:
    """What the router knows besides the question (it does no I/O): the user's clock and zone,
    and the names in the organization's data."""

    now: datetime
    timezone: str = "UTC"
    owners: Sequence[OwnerName] = ()
    pipelines: Sequence[str] = ()
    stages: Sequence[str] = ()

    @property
    def today(self) -> date:
        """The user's local date: where "this quarter" and "today" are."""
        return self.now.astimezone(ZoneInfo(self.timezone)).date()


@dataclass(frozen=True)
class Suggestion:
    name: str
    title: str
    question: str  # a verified question a user can ask as is
    score: float


@dataclass(frozen=True)
class Route:
    """``name`` is None when the router is not confident; ``reason`` then says why."""

    question: str
    name: str | None
    params: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0
    alternatives: tuple[Suggestion, ...] = ()
    reason: str | None = None
    limit: int | None = None  # "top 5": show the first rows of the (ordered) answer

    @property
    def routed(self) -> bool:
        return self.name is not None


@dataclass
class _Slots:
    periods: list[Period]
    quantities: list[Quantity]
    owner: NameMatch | None
    pipeline: NameMatch | None
    stage: NameMatch | None
    bucket: str | None
    group_by: str | None
    per_rep: bool = False  # "reps", "salespeople" asked about without naming one
    deal: str | None = None  # "the timeline of the Acme deal": the deal's id or name words


def suggested_questions() -> list[str]:
    """One verified question per query, as a user can ask it."""
    return [q.phrasings[0] for q in VERIFIED_QUERIES.values() if q.phrasings]


def route(question: str, context: RouteContext, *, index: QueryIndex | None = None) -> Route:
    """The verified query that answers ``question``, or no route with the closest three."""
    index = index or default_index()
    if not isinstance(question, str) or not question.strip():
        return _unrouted(question or "", {}, "the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        return _unrouted(question, {}, "the question is too long to be a verified lookup")
    today = context.today
    email = _EMAIL.search(question.lower())
    deal_id = _DEAL_ID.search(question.lower())
    text = normalize(_DEAL_ID.sub(" deal ", _EMAIL.sub(" ", question.lower())))
    refused = _REFUSE.search(text)
    deal, text = _deal_ref(text, deal_id.group(0) if deal_id else None, index)
    slots, terms, problem = _read(text, email.group(0) if email else None, context, index, today)
    slots.deal = deal
    if deal is not None and not terms:
        terms = [fold("timeline")]  # "what's going on with the acme deal": only the deal is left
    scores = index.scores(terms)
    named = _named_things(question, terms, index)
    if named and not problem:
        problem = f"it names {named}, which no verified query filters on"
    if refused:
        return _unrouted(question, scores, f"“{refused.group(0)}” asks for more than a lookup")
    if problem:
        return _unrouted(question, scores, problem)
    fitted: dict[str, dict[str, Any] | str] = {name: _params(name, slots, today) for name in scores}
    ranked = sorted(scores, key=lambda n: _weighed(scores[n], fitted[n]), reverse=True)
    best, runner_up = ranked[0], ranked[1]
    params = fitted[best]
    confidence = scores[best]
    margin = _weighed(confidence, params) - _weighed(scores[runner_up], fitted[runner_up])
    if isinstance(params, str):
        return _unrouted(question, scores, params)
    asked = max(scores, key=lambda n: scores[n])
    if isinstance(fitted[asked], str) and scores[asked] >= confidence + MIN_MARGIN / 2:
        # the question is about a query that cannot honour it: a neighbour's answer is not it
        return _unrouted(question, scores, str(fitted[asked]))
    if confidence < MIN_CONFIDENCE:
        return _unrouted(question, scores, "no verified query matches closely enough")
    if margin < MIN_MARGIN:
        return _unrouted(question, scores, f"it could be {best} or {runner_up}; ask more precisely")
    foreign = index.foreign_words(best, terms)
    if foreign:
        said = next((w for w in re.findall(r"[\w']+", text) if fold(w) == foreign[0]), foreign[0])
        return _unrouted(
            question, scores, f"“{said}” is another verified query's subject, not {best}'s"
        )
    try:  # the query's own validation has the last word (ranges, start before end)
        resolve_params(best, params, today=today)
    except VerifiedQueryError as exc:
        return _unrouted(question, scores, str(exc))
    limit = next((q.value for q in slots.quantities if q.kind == "limit"), None)
    return Route(
        question,
        best,
        params,
        round(confidence, 3),
        _closest(scores, exclude=best),
        limit=limit,
    )


_DEAL_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
# "timeline of the acme deal", "brief me on the initech renewal", "what happened on deal x":
# the words after the ask name one deal (the query matches them, in order, in its name).
_DEAL_ASK = re.compile(
    r"\b(?:timeline|history|story|chronology|brief|briefing|happened|happening|going on)"
    r"(?: me| us)?(?: up)?(?: so far)? (?:of|on|for|with|to|in|about) (?P<deal>.+)$"
)
_DEAL_LEAD = re.compile(r"^(?:(?:the|our|this|that|deal|opportunity|opportunities|opp|oppty) )+")
_DEAL_TAIL = re.compile(r"(?: (?:deal|opportunity|opp|oppty|so far|lately|recently|please))+$")
_PLURAL_LEAD = re.compile(r"^(?:deals|opportunities|opps|renewals|all|every|each|pipeline)\b")
_DEAL_NOUNS = re.compile(r"\b(?:deal|opportunity|opp|oppty|renewal|expansion)\b")


def _deal_ref(text: str, deal_id: str | None, index: QueryIndex) -> tuple[str | None, str]:
    """The deal a timeline question names (its id, or its name's words), and the text with
    those words blanked; (None, text) when the question names no single deal."""
    match = _DEAL_ASK.search(text)
    if match is None:
        return None, text
    start = match.start("deal")
    phrase = match.group("deal")
    lead = _DEAL_LEAD.match(phrase)
    name = phrase[lead.end() :] if lead else phrase
    tail = _DEAL_TAIL.search(name)
    name = name[: tail.start()] if tail else name
    asked = text[: match.start("deal")]
    if deal_id is not None:
        name = deal_id
    elif (
        not name
        or _PLURAL_LEAD.match(name)
        or all(_known(fold(w), index) or w.isdigit() for w in name.split())
    ):
        return None, text  # not one deal's name ("deals closing this quarter")
    elif ("happen" in asked or "going on" in asked) and not _DEAL_NOUNS.search(
        text[match.start("deal") :]
    ):
        return None, text  # "what happened to the pipeline": about a deal only if it says so
    end = start + len(phrase)
    return name.strip(), text[:start] + " " * (end - start) + text[end:]


def _named_things(question: str, terms: list[str], index: QueryIndex) -> str | None:
    """A capitalized word the router does not know ("Acme", "EMEA"), past the first word:
    the name of something a verified query cannot filter on (not an owner or pipeline)."""
    unknown = {t for t in terms if t not in index.vocabulary}
    if not unknown:
        return None
    for position, word in enumerate(re.findall(r"[A-Za-z][\w']*", question)):
        capitalized = word[0].isupper() and position > 0
        possessive = word.lower().endswith("'s")  # "Acme's", "Sara's" when Sara is no owner
        if (capitalized or possessive) and fold(word.lower()) in unknown:
            return f"“{word}”"
    return None


def _weighed(score: float, params: dict[str, Any] | str) -> float:
    # A query that cannot honour the question's slots still competes (the question may be
    # about it), at a discount, so it can block a near miss but never be routed to.
    return score if isinstance(params, dict) else score * 0.6


def _read(
    text: str, email: str | None, context: RouteContext, index: QueryIndex, today: date
) -> tuple[_Slots, list[str], str | None]:
    """The slots, the words left to score, and a problem that rules out any route."""
    periods = find_periods(text, today)
    taken = [p.span for p in periods]
    quantities = find_quantities(text, taken)
    taken += [q.span for q in quantities]
    vocabulary = index.vocabulary
    pipelines = find_labels(text, taken, "pipeline", context.pipelines)
    taken += [m.span for m in pipelines]
    stages = find_labels(text, taken, "stage", context.stages)
    taken += [m.span for m in stages]
    owner: NameMatch | None = None
    problem: str | None = None
    if email:
        known = [o for o in context.owners if (o.email or "").lower() == email]
        if known and known[0].value:
            owner = NameMatch("owner", str(known[0].value), (0, 0))
        else:
            problem = f"{email} is not an owner in this organization"
    else:
        owner = find_owner(text, taken, context.owners, vocabulary)
    if owner is not None:
        taken.append(owner.span)
        if owner.ambiguous:
            problem = f"several owners match: {', '.join(owner.ambiguous)}"
    if problem is None:
        problem = _unknown_filter(text, taken, index) or _excluded(
            text, [m for m in (owner, *pipelines, *stages) if m is not None]
        )
    if len(periods) > 1:
        problem = "it names more than one period"
    elif len(pipelines) > 1 or len(stages) > 1:
        problem = "it names more than one pipeline or stage"
    elif stray := stray_numbers(text, taken):
        problem = f"no verified query takes the number {stray[0]!r} as asked"
    bucket = _BUCKET.search(text)
    group = _GROUP.search(text)
    slots = _Slots(
        periods,
        quantities,
        owner,
        pipelines[0] if pipelines else None,
        stages[0] if stages else None,
        _bucket(bucket),
        _group(group),
    )
    terms = _terms(text, taken, slots, index)
    slots.per_rep = owner is None and "rep" in terms
    return slots, terms, problem


_FILTER_WORDS = frozenset({"in", "for", "from", "at", "by", "with", "among", "within", "across",
                           "on", "of", "about", "excluding", "except", "without"})  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _unknown_filter(text: str, taken: list[tuple[int, int]], index: QueryIndex) -> str | None:
    """ "in EMEA", "for enterprise", "from partners": a word the router does not know, after a
    preposition, is a filter no verified query can apply; answering without it would be wrong."""
    words = list(_WORD.finditer(text))

    def free(match: re.Match[str]) -> bool:
        return not any(match.start() < b and a < match.end() for a, b in taken)

    for before, after in itertools.pairwise(words):  # "emea deals", "inbound pipe"
        word = before.group(0)
        if (
            free(before)
            and word not in STOPWORDS
            and not word.isdigit()
            and fold(after.group(0)) in _RECORD_NOUNS
            and not _known(fold(word), index)
        ):
            return f"it asks about “{word}”, which no verified query can filter on"
    for position, match in enumerate(words):
        if match.group(0) not in _FILTER_WORDS:
            continue
        for following in words[position + 1 :]:
            if any(following.start() < b and a < following.end() for a, b in taken):
                break  # a period, a number or a name the router took
            word = following.group(0)
            if word in STOPWORDS:
                continue
            if _known(fold(word), index) or word.isdigit():
                break
            return f"it asks about “{word}”, which no verified query can filter on"
    return None


_RECORD_NOUNS = frozenset(fold(w) for w in ("deal", "pipeline", "rep", "account", "meeting"))
_EXCLUDING = re.compile(
    r"\b(?:excluding|exclude|except|other than|not in|not for|not|without|outside(?: of)?|"
    r"besides|apart from|minus|ignoring|ignore|but)(?: the| our)?\s*$"
)


def _excluded(text: str, names: list[NameMatch]) -> str | None:
    """ "excluding renewals": verified queries can only narrow to a name, not leave it out."""
    for name in names:
        if _EXCLUDING.search(text[: name.span[0]]):
            return f"it leaves out {name.value}; a verified query can only narrow to it"
    return None


def _known(word: str, index: QueryIndex) -> bool:
    return word in STOPWORDS or index.spelling(word) is not None


def _bucket(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    word = match.group(1) or match.group(2)
    return {"qtr": "quarter", "monthly": "month", "quarterly": "quarter", "yearly": "year",
            "annually": "year", "annual": "year"}.get(word, word)  # fmt: skip


def _group(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    if match.group(2):
        return "none"
    return _GROUP_CHOICES.get(match.group(1), "owner")


# "by team", "by deal type": the group_by choice they ask for (other words mean a rep).
_GROUP_CHOICES = {"pipeline": "pipeline", "stage": "stage", "team": "team",
                  "deal type": "deal_type", "company size": "account_size",
                  "account size": "account_size"}  # fmt: skip


def _terms(text: str, taken: list[tuple[int, int]], slots: _Slots, index: QueryIndex) -> list[str]:
    """The question's words outside the slots, typos corrected to words the router knows."""
    kept = list(text)
    for start, end in taken:
        kept[start:end] = " " * (end - start)
    terms: list[str] = []
    for word in content_words("".join(kept)):
        terms.append(index.spelling(word) or word)
    for quantity in slots.quantities:
        terms += [fold(w) for w in _SLOT_WORDS.get(quantity.kind, [])]
    if slots.stage is not None:
        terms.append(fold("stage"))
    return terms


def _params(name: str, slots: _Slots, today: date) -> dict[str, Any] | str:
    """Query ``name``'s parameters from the slots, or why it cannot honour them."""
    query = VERIFIED_QUERIES[name]
    accepted = {p.name for p in query.params}
    params: dict[str, Any] = {}
    if slots.deal is not None:
        if "deal" not in accepted:
            return f"{name} does not look at one deal"
        params["deal"] = slots.deal
    for match in (slots.owner, slots.pipeline, slots.stage):
        if match is None:
            continue
        if match.kind in accepted:
            params[match.kind] = match.value
        elif (name, match.kind) not in SHOWN_PER_ROW:
            return f"{name} cannot filter by {match.kind}"
    for quantity in slots.quantities:
        if quantity.kind in ("min_meetings", "max_contacts"):
            if quantity.kind not in accepted:
                return f"{name} has no {quantity.kind}"
            params[quantity.kind] = quantity.value
        elif quantity.kind == "days":
            if "days" in accepted:
                params["days"] = quantity.value
            elif "start_date" in accepted:
                window = _days_window(name, quantity.value, today)
                if isinstance(window, str):
                    return window
                params.update(window)
            else:
                return f"{name} has no window of days"
    if slots.periods:
        period = slots.periods[0]
        if "start_date" in accepted:
            window = _window(name, period, today)
            if isinstance(window, str):
                return window
            if "start_date" in params:
                return "it names a window twice"
            params.update(window)
        elif "days" in accepted and period.rolling_days is not None and "days" not in params:
            params["days"] = period.rolling_days
        else:
            return f"{name} does not take a period like “{period.text}”"
    if slots.per_rep and name not in REP_ROWS:
        return f"{name} has no row per rep"
    if slots.per_rep and "group_by" in accepted and not slots.group_by:
        params["group_by"] = "owner"
    if slots.bucket:
        if "period" not in accepted:
            return f"{name} cannot break results down by {slots.bucket}"
        params["period"] = slots.bucket
    if slots.group_by:
        choices = query.param("group_by").choices if "group_by" in accepted else ()
        if slots.group_by in choices:
            params["group_by"] = slots.group_by
        elif name not in PER_ROW.get(slots.group_by, ()) and slots.group_by != "none":
            return f"{name} cannot break results down by {slots.group_by}"
    return params


def _window(name: str, period: Period, today: date) -> dict[str, date] | str:
    start, end = period.start, period.end
    if name in LOOKS_BACK:
        if start > today:
            return f"“{period.text}” is in the future; {name} looks back"
        end = min(end, today)
    elif name in LOOKS_AHEAD:
        if end < today:
            return f"“{period.text}” is past; {name} looks ahead"
        start = max(start, today)
    return {"start_date": start, "end_date": end}


def _days_window(name: str, days: int, today: date) -> dict[str, date] | str:
    from datetime import timedelta

    if name in LOOKS_AHEAD or name == "forecast_by_category":
        return {"start_date": today, "end_date": today + timedelta(days=days)}
    return {"start_date": today - timedelta(days=days), "end_date": today}


def _closest(scores: dict[str, float], *, exclude: str | None = None) -> tuple[Suggestion, ...]:
    ranked = sorted((n for n in scores if n != exclude), key=lambda n: -scores[n])[:3]
    return tuple(
        Suggestion(n, VERIFIED_QUERIES[n].title, VERIFIED_QUERIES[n].phrasings[0],
                   round(scores[n], 3))
        for n in ranked
    )  # fmt: skip


def _unrouted(question: str, scores: dict[str, float], reason: str) -> Route:
    if not scores:
        scores = dict.fromkeys(VERIFIED_QUERIES, 0.0)
    return Route(question, None, {}, 0.0, _closest(scores), reason=reason)
