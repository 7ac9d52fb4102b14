"""The seller's Slack workspace over the synthetic company: the ground truth `slack.py` serves.

Built lazily from the company on first use (`Company.slack`), from a generator seeded by the
company seed alone and reading only fields that mutations never change, so it is the same
whichever order things are asked in. Members are the reps (emails at the seller's domain), a
couple of bots and Slackbot; shared (Slack Connect) account channels add external authors who
are CRM contacts (emails at their account's domain).

Channels: a few general ones, one per key account (``acct-<name>``) and one per deal room
(``deal-<name>``). Messages mention accounts, deals and people; about a third start threads.
Times are integer microseconds (a Slack ``ts`` is ``seconds.micros``); every channel's
top-level messages and every thread's replies are kept oldest first, and new ones are only
ever appended with later times, so listings can bisect.
"""

from __future__ import annotations

import hashlib
import random
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from revtops_sandbox import names
from revtops_sandbox.records import CrmView, deal_name

US_PER_MS = 1000
US_PER_DAY = 86_400_000_000

# Each rep team sits in one time zone (IANA name, label, standard offset in seconds).
TEAM_ZONES: tuple[tuple[str, str, int], ...] = (
    ("America/New_York", "Eastern Standard Time", -18_000),
    ("America/Los_Angeles", "Pacific Standard Time", -28_800),
    ("Europe/London", "Greenwich Mean Time", 0),
    ("America/Chicago", "Central Standard Time", -21_600),
    ("Europe/Berlin", "Central European Time", 3_600),
    ("Asia/Singapore", "Singapore Standard Time", 28_800),
)

GENERAL_CHANNELS: tuple[tuple[str, str, bool, bool], ...] = (
    # name, purpose, is_private, bot is a member
    ("general", "Company-wide announcements", False, True),
    ("sales", "Pipeline, deals and customer news", False, True),
    ("deal-desk", "Pricing approvals and paper process", False, True),
    ("wins", "Closed-won deals", False, True),
    ("random", "Anything goes", False, False),
    ("sales-leadership", "Forecast calls and hiring", True, True),
)

ACCOUNT_TEXTS = (
    "Call with {contact} at {account} went well, they want pricing for {product}.",
    "{account} asked about SSO and audit logs again. <@{rep}> can you take this?",
    "Heads up: {account} renewal is coming up, usage is up {n}% this quarter.",
    "Sent the MSA redlines back to {contact}. Waiting on their legal team.",
    "QBR with {account} booked for next week. Agenda in the doc.",
    "{contact} mentioned they are also talking to a competitor. Let's sync.",
    "Exec sponsor at {account} changed; need an intro to the new VP.",
    "<b>Reminder</b>: {account} security questionnaire due Friday & it's long.",
    "Support escalation from {account}: exports are slow. Looping in <@{rep}>.",
    "{account} wants a {n}-seat pilot of {product} before expanding.",
)
EXTERNAL_TEXTS = (
    "Thanks all! Sharing our requirements doc for {product} shortly.",
    "Quick question: does {product} support SCIM provisioning?",
    "Our procurement team needs the updated order form by end of month.",
    "Great session today, the team loved the forecasting views.",
    "Can we move Thursday's sync to 3pm? Conflict on our side.",
)
DEAL_TEXTS = (
    "Deal room for {deal} ({amount}). Close plan pinned above.",
    "{deal}: champion is {contact}, economic buyer still unclear.",
    "Pricing approval needed for {deal}: {n}% discount requested.",
    "Legal review started on {deal}. ETA two weeks.",
    "Moved {deal} close date; procurement is slow. <@{rep}> FYI.",
    "{contact} confirmed budget for {deal}. Next step: technical validation.",
    "Competitor showed up late in {deal}. Battlecard here: <https://wiki.example/battlecards|link>",
    "Mutual action plan for {deal} shared with {contact}.",
)
GENERAL_TEXTS = (
    "Reminder: forecast calls move to Tuesdays this quarter.",
    "Welcome <@{rep}> to the team!",
    "Great quarter so far, {n}% of plan with four weeks to go.",
    "Who has a good reference customer in {industry}?",
    "{account} just signed! Congrats <@{rep}>",
    "New pricing for {product} is live in the CPQ.",
    "Office is closed Monday for the holiday.",
)
REPLY_TEXTS = (
    "On it.",
    "Thanks, <@{rep}>!",
    "I can join that call.",
    "Can you add the notes to the CRM?",
    "Agreed, let's push for end of quarter.",
    "They confirmed by email just now.",
    "Looping in <@{rep}> who knows the account.",
    "Sounds good :+1:",
    "What did {contact} say about timing?",
    "Updated the opportunity in the CRM.",
)
LATE_REPLY_TEXTS = (
    "Reviving this: {account} came back to us today.",
    "Update on this thread: {contact} signed off.",
    "Following up here, any news?",
    "Closing the loop: this is resolved.",
)


def ts_str(ts_us: int) -> str:
    """Slack's ``ts`` string: seconds, a dot, six digits of microseconds."""
    return f"{ts_us // 1_000_000}.{ts_us % 1_000_000:06d}"


_TS_RE = re.compile(r"^\s*(\d{1,12})(?:\.(\d{1,6}))?\s*$")


def parse_ts(text: str) -> int | None:
    """A ``ts`` (or plain seconds) as integer microseconds; None when it is not one."""
    m = _TS_RE.match(text)
    if m is None:
        return None
    frac = (m.group(2) or "").ljust(6, "0")
    return int(m.group(1)) * 1_000_000 + int(frac)


def slack_id(prefix: str, seed: int, kind: str, n: int) -> str:
    """A Slack-looking id (``U07ABC12D3E``): prefix, then 10 upper-case hex digits."""
    digest = hashlib.sha1(f"{seed}:{kind}:{n}".encode()).hexdigest()[:10].upper()
    return f"{prefix}0{digest[1:]}"


@dataclass(slots=True)
class SlackUser:
    idx: int
    id: str
    team_id: str
    name: str  # the handle
    real_name: str
    email: str  # "" for bots and Slackbot
    tz: str
    tz_label: str
    tz_offset: int
    updated_s: int
    is_bot: bool = False
    bot_id: str = ""
    deleted: bool = False
    is_admin: bool = False
    owner: int = -1  # Company.owners index (reps)
    contact: int = -1  # Company.contacts index (external Slack Connect members)
    external: bool = False  # from another workspace: not in users.list


@dataclass(slots=True)
class SlackMessage:
    idx: int
    channel: int
    ts_us: int
    user: int  # SlackUser idx
    text: str
    thread_ts_us: int = 0  # the parent's ts for replies, the own ts for thread parents
    account: int = -1  # the account the message is about (-1: none)
    deal: int = -1
    replies: list[SlackMessage] = field(default_factory=list)  # oldest first
    posted: bool = False  # came in through chat.postMessage / file upload
    files: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[Any] | None = None

    @property
    def ts(self) -> str:
        return ts_str(self.ts_us)

    @property
    def thread_ts(self) -> str | None:
        return ts_str(self.thread_ts_us) if self.thread_ts_us else None

    @property
    def is_reply(self) -> bool:
        return bool(self.thread_ts_us) and self.thread_ts_us != self.ts_us


@dataclass(slots=True)
class SlackChannel:
    idx: int
    id: str
    name: str
    kind: str  # "general", "account" or "deal"
    purpose: str
    topic: str
    created_s: int
    creator: int  # SlackUser idx
    is_private: bool = False
    is_archived: bool = False
    is_member: bool = True  # the app's bot user is in it (else history: not_in_channel)
    is_ext_shared: bool = False
    account: int = -1
    deal: int = -1
    members: list[int] = field(default_factory=list)
    messages: list[SlackMessage] = field(default_factory=list)  # top level, oldest first

    def newest_ts_us(self) -> int:
        return self.messages[-1].ts_us if self.messages else 0


@dataclass(slots=True)
class SlackPost:
    """Something the app posted (chat.postMessage or a completed file upload)."""

    method: str
    channel_id: str
    ts: str
    text: str
    thread_ts: str | None
    blocks: list[Any] | None
    files: list[dict[str, Any]]


@dataclass(slots=True)
class PendingUpload:
    file_id: str
    filename: str
    length: int
    alt_txt: str
    data: bytes | None = None


@dataclass(slots=True)
class SlackWorkspace:
    team_id: str
    team_name: str
    domain: str
    users: list[SlackUser]
    channels: list[SlackChannel]
    messages: list[SlackMessage]  # every message, replies included, in creation order
    bot_user: int  # the app's own bot user (SlackUser idx)
    posts: list[SlackPost] = field(default_factory=list)
    uploads: dict[str, PendingUpload] = field(default_factory=dict)  # by upload secret
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # completed, by file id
    _user_by_id: dict[str, SlackUser] = field(default_factory=dict)
    _channel_by_id: dict[str, SlackChannel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._user_by_id = {u.id: u for u in self.users}
        self._channel_by_id = {c.id: c for c in self.channels}

    def user(self, user_id: str) -> SlackUser | None:
        return self._user_by_id.get(user_id)

    def channel(self, channel_id: str) -> SlackChannel | None:
        return self._channel_by_id.get(channel_id)

    def channel_named(self, name: str) -> SlackChannel | None:
        name = name.lstrip("#")
        return next((c for c in self.channels if c.name == name), None)

    def members(self) -> list[SlackUser]:
        """``users.list``: the workspace's own users (not external Slack Connect people)."""
        return [u for u in self.users if not u.external]

    def find(self, channel: SlackChannel, ts_us: int) -> SlackMessage | None:
        """A top-level message or a reply of ``channel`` by its exact ts."""
        msgs = channel.messages
        i = bisect_left(msgs, ts_us, key=lambda m: m.ts_us)
        if i < len(msgs) and msgs[i].ts_us == ts_us:
            return msgs[i]
        for m in msgs:
            for r in m.replies:
                if r.ts_us == ts_us:
                    return m
        return None

    def window(self, channel: SlackChannel, lo: int, hi: int) -> list[SlackMessage]:
        """Top-level messages with lo <= ts <= hi, oldest first."""
        msgs = channel.messages
        a = bisect_left(msgs, lo, key=lambda m: m.ts_us)
        b = bisect_right(msgs, hi, key=lambda m: m.ts_us)
        return msgs[a:b]

    def next_ts_us(self, channel: SlackChannel, at_least_us: int) -> int:
        """A fresh ts in ``channel``: ``at_least_us`` or just after its newest message."""
        newest = channel.newest_ts_us()
        for m in channel.messages[-50:]:
            if m.replies:
                newest = max(newest, m.replies[-1].ts_us)
        return max(at_least_us, newest + 1)

    def add_message(self, msg: SlackMessage, parent: SlackMessage | None = None) -> SlackMessage:
        """Append a new message (newer than everything in its channel or thread)."""
        msg.idx = len(self.messages)
        self.messages.append(msg)
        if parent is None:
            self.channels[msg.channel].messages.append(msg)
        else:
            if not parent.thread_ts_us:
                parent.thread_ts_us = parent.ts_us
            msg.thread_ts_us = parent.ts_us
            parent.replies.append(msg)
        return msg

    def message_count(self) -> int:
        return len(self.messages)


# ---------------------------------------------------------------------------------------------
# Generation


def build_workspace(company: CrmView) -> SlackWorkspace:
    rng = random.Random(f"slack:{company.seed}")
    seed = company.seed
    anchor_us = company.anchor_ms * US_PER_MS
    team_id = slack_id("T", seed, "team", 0)
    users: list[SlackUser] = []
    for o in company.owners:
        zone = TEAM_ZONES[o.team % len(TEAM_ZONES)]
        users.append(
            SlackUser(
                idx=len(users),
                id=slack_id("U", seed, "user", o.idx),
                team_id=team_id,
                name=o.email.split("@", 1)[0],
                real_name=o.name,
                email=o.email,
                tz=zone[0],
                tz_label=zone[1],
                tz_offset=zone[2],
                updated_s=o.updated_ms // 1000,
                deleted=not o.active,
                is_admin=o.idx == 0,
                owner=o.idx,
            )
        )
    reps = [u.idx for u in users if not u.deleted] or [u.idx for u in users]
    bot_specs = (("revtops", "Revtops"), ("hubspot", "HubSpot"))
    bot_idx = []
    for k, (handle, real) in enumerate(bot_specs):
        bot_idx.append(len(users))
        users.append(
            SlackUser(
                idx=len(users),
                id=slack_id("U", seed, "bot", k),
                team_id=team_id,
                name=handle,
                real_name=real,
                email="",
                tz="America/Los_Angeles",
                tz_label="Pacific Standard Time",
                tz_offset=-28_800,
                updated_s=company.anchor_ms // 1000 - 86_400 * 200,
                is_bot=True,
                bot_id=slack_id("B", seed, "bot", k),
            )
        )
    users.append(
        SlackUser(
            idx=len(users),
            id="USLACKBOT",
            team_id=team_id,
            name="slackbot",
            real_name="Slackbot",
            email="",
            tz="America/Los_Angeles",
            tz_label="Pacific Standard Time",
            tz_offset=-28_800,
            updated_s=0,
        )
    )
    ws = SlackWorkspace(
        team_id=team_id,
        team_name=company.seller_name,
        domain="northwind-sales",
        users=users,
        channels=[],
        messages=[],
        bot_user=bot_idx[0],
    )
    gen = _Generator(company, ws, rng, reps, bot_idx[1], anchor_us)
    gen.general_channels()
    gen.account_channels(max(2, round(40 * company.scale)))
    gen.deal_channels(max(2, round(60 * company.scale)))
    ws.__post_init__()
    return ws


class _Generator:
    def __init__(
        self,
        company: CrmView,
        ws: SlackWorkspace,
        rng: random.Random,
        reps: list[int],
        crm_bot: int,
        anchor_us: int,
    ) -> None:
        self.co = company
        self.ws = ws
        self.rng = rng
        self.reps = reps
        self.crm_bot = crm_bot
        self.anchor_us = anchor_us
        self.taken: set[str] = set()

    def _channel(
        self, name: str, kind: str, purpose: str, created_us: int, creator: int
    ) -> SlackChannel:
        base, k = name, 2
        while name in self.taken:  # Slack channel names are unique in a workspace
            name, k = f"{base[:76]}-{k}", k + 1
        self.taken.add(name)
        ch = SlackChannel(
            idx=len(self.ws.channels),
            id=slack_id("C", self.co.seed, "channel", len(self.ws.channels)),
            name=name,
            kind=kind,
            purpose=purpose,
            topic="",
            created_s=created_us // 1_000_000,
            creator=creator,
        )
        self.ws.channels.append(ch)
        return ch

    def general_channels(self) -> None:
        start = self.anchor_us - 900 * US_PER_DAY
        for name, purpose, private, member in GENERAL_CHANNELS:
            ch = self._channel(name, "general", purpose, start, self.reps[0])
            ch.is_private, ch.is_member = private, member
            ch.members = list(self.reps) + ([self.ws.bot_user] if member else [])
            n = 30 + int(self.rng.random() * 50)
            self._fill(ch, n, start + US_PER_DAY, self.anchor_us, GENERAL_TEXTS, ch.members)

    def account_channels(self, n: int) -> None:
        co = self.co
        inputs = co.activity_inputs()
        kinds, employees = inputs.account_kinds, inputs.account_employees
        key = sorted(
            (a for a in co.accounts if kinds[a.idx] in (1, 3)),
            key=lambda a: (-employees[a.idx], a.idx),
        )[:n]
        contacts_of = co.reverse("contacts", "companies")
        for i, acc in enumerate(key):
            owner_user = self._rep_user(acc.owner)
            created = max(acc.created_ms * US_PER_MS, self.anchor_us - 420 * US_PER_DAY)
            ch = self._channel(
                _slug("acct-", acc.name), "account", f"Account channel for {acc.name}",
                created, owner_user,
            )  # fmt: skip
            ch.account = acc.idx
            team = sorted({owner_user, *self.rng.sample(self.reps, min(3, len(self.reps)))})
            externals: list[int] = []
            mine = contacts_of.get(acc.idx, [])
            if mine and (i == 0 or self.rng.random() < 0.4):  # at least one shared channel
                ch.is_ext_shared = True
                picked = self.rng.sample(mine, min(len(mine), 1 + int(self.rng.random() * 3)))
                externals = [self._external(acc.idx, c) for c in sorted(picked)]
            ch.members = [*team, *externals, self.ws.bot_user]
            ch.topic = f"{acc.name} | owner: {co.owners[acc.owner].name}"
            n_msgs = 10 + int(self.rng.random() * 30)
            self._fill(
                ch, n_msgs, created + US_PER_DAY, self.anchor_us, ACCOUNT_TEXTS, team,
                externals=externals, account=acc.idx,
            )  # fmt: skip

    def deal_channels(self, n: int) -> None:
        co = self.co
        horizon = co.anchor_ms - 540 * 86_400_000
        pool = [d for d in co.deals if d.pipeline == 0 and d.created_ms >= horizon]
        inputs = co.activity_inputs()
        amounts, close_days = inputs.deal_amounts, inputs.deal_close_days
        pool.sort(key=lambda d: (-amounts[d.idx], d.idx))
        candidates = pool[: max(n, 3 * n)]
        chosen = sorted(self.rng.sample(candidates, min(n, len(candidates))), key=lambda d: d.idx)
        for deal in chosen:
            acc = co.accounts[deal.account]
            owner_user = self._rep_user(deal.owner)
            created = deal.created_ms * US_PER_MS
            dname = deal_name(acc, deal)
            ch = self._channel(
                _slug("deal-", dname), "deal", f"Deal room: {dname}", created, owner_user
            )
            ch.account, ch.deal = acc.idx, deal.idx
            ch.is_private = self.rng.random() < 0.3
            team = sorted({owner_user, *self.rng.sample(self.reps, min(2, len(self.reps)))})
            ch.members = [*team, self.ws.bot_user]
            close_us = close_days[deal.idx] * US_PER_DAY
            end = min(self.anchor_us, max(created + 5 * US_PER_DAY, close_us))
            n_msgs = 8 + int(self.rng.random() * 22)
            self._fill(
                ch, n_msgs, created + 3_600_000_000, end, DEAL_TEXTS, team,
                account=acc.idx, deal=deal.idx,
            )  # fmt: skip
            if end < self.anchor_us - 60 * US_PER_DAY and self.rng.random() < 0.5:
                ch.is_archived = True  # old deal rooms get archived

    # -- helpers --------------------------------------------------------------------------------

    def _rep_user(self, owner_idx: int) -> int:
        return owner_idx  # reps are the first users, in owner order

    def _external(self, account: int, contact_idx: int) -> int:
        c = self.co.contacts[contact_idx]
        acc = self.co.accounts[account]
        u = SlackUser(
            idx=len(self.ws.users),
            id=slack_id("U", self.co.seed, "external", contact_idx),
            team_id=slack_id("T", self.co.seed, "external-team", account),
            name=c.email.split("@", 1)[0],
            real_name=f"{c.first_name} {c.last_name}",
            email=c.email,
            tz="America/New_York",
            tz_label="Eastern Standard Time",
            tz_offset=-18_000,
            updated_s=c.created_ms // 1000,
            contact=contact_idx,
            external=True,
        )
        u.name = f"{u.name}.{acc.domain.split('.', 1)[0]}"
        self.ws.users.append(u)
        return u.idx

    def _fill(
        self,
        ch: SlackChannel,
        n: int,
        start_us: int,
        end_us: int,
        texts: tuple[str, ...],
        authors: list[int],
        *,
        externals: list[int] | (None) = None,
        account: int = -1,
        deal: int = -1,
    ) -> None:
        rng = self.rng
        span = max(1, end_us - start_us)
        times = sorted({start_us + int(rng.random() * span) for _ in range(n)})
        for ts in times:
            author = authors[int(rng.random() * len(authors))] if authors else self.reps[0]
            pool = texts
            if externals and rng.random() < 0.25:
                author = externals[int(rng.random() * len(externals))]
                pool = EXTERNAL_TEXTS
            acc = account
            if ch.kind == "general" and rng.random() < 0.4:
                acc = int(rng.random() * len(self.co.accounts))
            bot = ch.kind == "deal" and rng.random() < 0.08
            text = self._text(
                "Deal stage changed for {deal}." if bot else pool[int(rng.random() * len(pool))],
                acc, deal,
            )  # fmt: skip
            msg = self.ws.add_message(
                SlackMessage(0, ch.idx, ts, self.crm_bot if bot else author, text, 0, acc, deal)
            )
            if bot or rng.random() >= 0.33:
                continue
            reply_authors = [*authors, *(externals or [])]
            t = ts
            for _ in range(1 + int(rng.random() * 6)):
                t += 60_000_000 + int(rng.random() * 36 * 3_600_000_000)
                if t >= self.anchor_us:
                    break
                who = reply_authors[int(rng.random() * len(reply_authors))]
                reply = SlackMessage(
                    0, ch.idx, t, who,
                    self._text(REPLY_TEXTS[int(rng.random() * len(REPLY_TEXTS))], acc, deal),
                    0, acc, deal,
                )  # fmt: skip
                self.ws.add_message(reply, parent=msg)

    def _text(self, template: str, account: int, deal: int) -> str:
        return fill_text(self.co, self.ws, self.rng, template, account, deal, self.reps)


def fill_text(
    co: CrmView,
    ws: SlackWorkspace,
    rng: random.Random,
    template: str,
    account: int,
    deal: int,
    reps: list[int],
) -> str:
    """Fill a message template with the names of the account, deal, a contact and a rep."""
    if account < 0:
        account = int(rng.random() * len(co.accounts))
    acc = co.accounts[account]
    contacts = co.reverse("contacts", "companies").get(acc.idx, [])
    contact = co.contacts[contacts[int(rng.random() * len(contacts))]] if contacts else None
    d = co.deals[deal] if deal >= 0 else None
    amount = co.activity_inputs().deal_amounts[deal] if deal >= 0 else -1
    rep = ws.users[reps[int(rng.random() * len(reps))]]
    values = {
        "account": acc.name,
        "contact": f"{contact.first_name} {contact.last_name}" if contact else "their champion",
        "deal": deal_name(acc, d) if d is not None else acc.name,
        "amount": f"${amount // 100:,}" if amount >= 0 else "TBD",
        "product": names.PRODUCTS[d.product if d is not None else acc.idx % len(names.PRODUCTS)],
        "industry": names.INDUSTRIES[acc.industry][1],
        "rep": rep.id,
        "n": str(5 + int(rng.random() * 40)),
    }
    return template.format(**values)


def _slug(prefix: str, name: str) -> str:
    """A Slack channel name: lower case, dashes, at most 80 characters."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (prefix + s)[:80].rstrip("-")
