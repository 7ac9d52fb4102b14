"""Words of a question as the router compares them: lowercase, plural-free, synonyms folded."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Words that carry no intent of their own.
STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or our we us you your my me i is are was
    were be been being do does did doing have has had having what whats what's which how
    when where show list give get tell please can could would will there their them it its
    it's this that these those all any each per so up out as about into right now currently
    current just also than then let lets let's see see me much many owned belonging belong
    assigned look looks looking like going doing got getting seem seems been things stuff
    kind sort hey quick quickly""".split()  # noqa: SIM905 (a word list reads better as text)
)

# Folded to one spelling before comparing, so phrasings need not list every synonym.
SYNONYMS: dict[str, str] = {
    "opportunity": "deal",
    "opportunities": "deal",
    "opp": "deal",
    "opps": "deal",
    "oppty": "deal",
    "oppties": "deal",
    "reps": "rep",
    "salesperson": "rep",
    "salespeople": "rep",
    "seller": "rep",
    "sellers": "rep",
    "ae": "rep",
    "aes": "rep",
    "owner": "rep",
    "owners": "rep",
    "pipe": "pipeline",
    "funnel": "pipeline",
    "customers": "account",
    "customer": "account",
    "companies": "account",
    "company": "account",
    "clients": "account",
    "client": "account",
    "accounts": "account",
    "meetings": "meeting",
    "met": "meeting",
    "meet": "meeting",
    "stuck": "stalled",
    "stale": "stalled",
    "stagnant": "stalled",
    "singlethreaded": "single",
    "overdue": "overdue",
    "pushed": "slipped",
    "slip": "slipped",
    "slipping": "slipped",
    "percent": "percentage",
    "highest": "best",
    "greatest": "best",
    "strongest": "best",
    "zero": "no",
    "without": "no",
    "none": "no",
    "nobody": "no",
    "nothing": "no",
    "anyone": "anybody",
    "sold": "closed",
    "budged": "moved",
    "budge": "move",
    "havent": "no",
    "hasnt": "no",
    "hadnt": "no",
    "didnt": "no",
    "dont": "no",
    "doesnt": "no",
    "isnt": "no",
    "arent": "no",
    "wasnt": "no",
    "werent": "no",
    "not": "no",
    "never": "no",
    "whos": "who",
    "who's": "who",
    "slated": "expected",
    "scheduled": "expected",
    "due": "expected",
    "projected": "expected",
    "set": "expected",
    "bookings": "booked",
}
# Kept whole by the stemmer: an open deal "closing" and a "closed" one are different questions.
UNSTEMMED = frozenset({"closing", "closed"})


def normalize(text: str) -> str:
    """Lowercase, curly quotes straightened, hyphens and punctuation turned into spaces."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[-_/]", " ", text).replace("%", " percent ")
    text = re.sub(r"\bpast due\b", "overdue", text)  # not "past" (a period) and "due" (ahead)
    text = re.sub(r"\bun(touched|engaged|worked)\b", r"not \1", text)
    text = re.sub(r"[^a-z0-9'$%+ ]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def words(text: str) -> list[str]:
    """The words of normalized ``text``, possessives kept (``sara's``)."""
    return _WORD.findall(text)


def fold(word: str) -> str:
    """One spelling per word: synonyms folded, possessive dropped, a light stem (plural and
    -ing, -ed, -ion, -ment, -ly, a final e) so "closing", "closed" and "close" meet."""
    if word.endswith("'s"):
        word = word[:-2]
    word = SYNONYMS.get(word.replace("'", ""), word.replace("'", ""))
    return SYNONYMS.get(stem(word), stem(word))


def stem(word: str) -> str:
    if word in UNSTEMMED:
        return word
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix, shortest in (("ment", 8), ("ing", 6), ("ion", 6), ("ed", 5), ("ly", 6)):
        if word.endswith(suffix) and len(word) >= shortest:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("e") and not word.endswith("ee"):
        word = word[:-1]
    return word
