"""The bundled airline-travel corpus (``data/airline``) and the deterministic generator behind it.

The corpus is written by this module, not copied from any benchmark: every utterance is drawn
from hand-written sentence frames filled from the data tables below, using ATIS's slot and intent
names so that a model, a config or a metric that works here works on ATIS too. Tokens are lower
case, digits stay digits (``5 pm``, ``flight 1291``, ``$ 300``) and multi-word values are
multi-token ``B-``/``I-`` spans (``new york`` -> ``B-toloc.city_name I-toloc.city_name``).

The point of the corpus is that *context decides the slot*: one list of cities fills
``fromloc``/``toloc``/``stoploc``/``city_name``, one list of dates fills ``depart_date``,
``arrive_date`` and ``return_date``, one list of times fills ``depart_time`` and ``arrive_time``,
and the word ``first`` may be a day number, a flight modifier or half of a class. The role is
set by the words around a value, sometimes far to its left (``flights from boston arriving in
denver on monday``: the date is an arrival date because of ``arriving``) and sometimes to its
right (``boston to denver``, ``a 5 pm arrival``, ``with a friday return``).

Deliberate quirks, as in the real benchmark: a few cities occur only in dev/test; a handful of
dev/test utterances (0.4% of each, per kind) carry the slot ``booking_class`` or the intent
``atis_day_name``, neither of which occurs in train; and two conventions are annotated
inconsistently (an ``airport`` after an airport name is inside its span half the time, and a
bare date/time governed by an earlier ``arriving in`` is tagged ``depart_*`` a quarter of the
time). Dev and test never repeat a train utterance. ``data/airline/README.md`` has the details.

Determinism: each split is drawn from its own ``random.Random`` seeded with the string
``"slotfill-airline/<seed>/<split>"`` (string seeds are hashed with SHA-512, so neither
``PYTHONHASHSEED`` nor the platform matters). Nothing else is random: no global random state,
no set or dict iteration, no clock, no locale.

Default sizes (:data:`DEFAULT_SIZES`): train 4000, dev 500, test 800 utterances.

Run::

    python -m slotfill.data.synthetic                    # (re)write data/airline
    python -m slotfill.data.synthetic --check            # exit 1 if data/airline is stale
    python -m slotfill.data.synthetic --out /tmp/air --seed 7
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

Triple = tuple[list[str], list[str], str]
"""One utterance: tokens, IOB2 tags (one per token), intent."""

Seg = tuple[str, "str | None"]
"""A run of words and the slot they fill (``None``: outside any slot)."""

SPLITS: tuple[str, ...] = ("train", "dev", "test")
DEFAULT_SIZES: dict[str, int] = {"train": 4000, "dev": 500, "test": 800}
DEFAULT_SEED = 13
DEFAULT_OUT = Path("data/airline")
FILES: tuple[str, ...] = ("seq.in", "seq.out", "label")

MAX_TOKENS = 35
P_UNSEEN_CITY = 0.03
"""In dev/test, the chance that a drawn city comes from :data:`UNSEEN_CITIES`."""
QUIRK_PER_MILLE = 4
"""Per kind of quirk (unseen slot, unseen intent): utterances per 1000 in dev and test."""

# --------------------------------------------------------------------------------------------
# Data tables
# --------------------------------------------------------------------------------------------

CITIES: tuple[tuple[str, str], ...] = (
    ("boston", "massachusetts"), ("denver", "colorado"), ("dallas", "texas"),
    ("fort worth", "texas"), ("houston", "texas"), ("san antonio", "texas"), ("austin", "texas"),
    ("el paso", "texas"), ("atlanta", "georgia"), ("baltimore", "maryland"),
    ("philadelphia", "pennsylvania"), ("pittsburgh", "pennsylvania"), ("new york", "new york"),
    ("buffalo", "new york"), ("rochester", "new york"), ("newark", "new jersey"),
    ("washington", ""), ("chicago", "illinois"), ("detroit", "michigan"), ("cleveland", "ohio"),
    ("columbus", "ohio"), ("cincinnati", "ohio"), ("indianapolis", "indiana"),
    ("milwaukee", "wisconsin"), ("minneapolis", "minnesota"), ("saint paul", "minnesota"),
    ("kansas city", "missouri"), ("saint louis", "missouri"), ("memphis", "tennessee"),
    ("nashville", "tennessee"), ("charlotte", "north carolina"), ("raleigh", "north carolina"),
    ("new orleans", "louisiana"), ("miami", "florida"), ("orlando", "florida"),
    ("tampa", "florida"), ("fort lauderdale", "florida"), ("jacksonville", "florida"),
    ("phoenix", "arizona"), ("tucson", "arizona"), ("las vegas", "nevada"),
    ("salt lake city", "utah"), ("seattle", "washington"), ("spokane", "washington"),
    ("portland", "oregon"), ("san francisco", "california"), ("oakland", "california"),
    ("san jose", "california"), ("los angeles", "california"), ("san diego", "california"),
    ("burbank", "california"), ("long beach", "california"), ("sacramento", "california"),
    ("albuquerque", "new mexico"), ("oklahoma city", "oklahoma"), ("tulsa", "oklahoma"),
    ("omaha", "nebraska"), ("des moines", "iowa"), ("louisville", "kentucky"),
    ("richmond", "virginia"), ("hartford", "connecticut"), ("providence", "rhode island"),
    ("honolulu", "hawaii"), ("anchorage", "alaska"), ("boise", "idaho"),
    ("colorado springs", "colorado"), ("dallas fort worth", "texas"),
)
"""(city, state) pairs of every split; ``""``: no state is ever said after the city."""

UNSEEN_CITIES: tuple[tuple[str, str], ...] = (
    ("little rock", "arkansas"), ("green bay", "wisconsin"), ("savannah", "georgia"),
    ("reno", "nevada"), ("fresno", "california"), ("santa barbara", "california"),
)
"""Cities that occur only in dev and test."""

STATE_OF: dict[str, str] = dict(CITIES + UNSEEN_CITIES)

AIRLINES: tuple[tuple[str, str], ...] = (
    ("american airlines", "aa"), ("american", "aa"), ("delta", "dl"), ("delta airlines", "dl"),
    ("united", "ua"), ("united airlines", "ua"), ("continental", "co"), ("us air", "us"),
    ("northwest", "nw"), ("alaska airlines", "as"), ("southwest", "wn"), ("jetblue", "b6"),
    ("frontier", "f9"), ("spirit", "nk"), ("hawaiian airlines", "ha"), ("sun country", "sy"),
    ("midwest express", "yx"), ("air canada", "ac"), ("twa", "tw"), ("america west", "hp"),
    ("lufthansa", "lh"), ("british airways", "ba"), ("air france", "af"), ("klm", "kl"),
    ("virgin america", "vx"), ("allegiant", "g4"), ("tower air", "ff"), ("eastern", "ea"),
)
"""(airline name, two-character code); a few airlines have two names."""

AIRPORTS: tuple[tuple[str, str, str], ...] = (
    ("logan international", "bos", "boston"), ("la guardia", "lga", "new york"),
    ("kennedy international", "jfk", "new york"), ("newark international", "ewr", "newark"),
    ("o'hare", "ord", "chicago"), ("midway", "mdw", "chicago"), ("dulles", "iad", "washington"),
    ("washington national", "dca", "washington"), ("love field", "dal", "dallas"),
    ("dallas fort worth international", "dfw", "dallas"),
    ("hartsfield international", "atl", "atlanta"), ("stapleton international", "den", "denver"),
    ("san francisco international", "sfo", "san francisco"),
    ("los angeles international", "lax", "los angeles"),
    ("mitchell international", "mke", "milwaukee"), ("lambert field", "stl", "saint louis"),
    ("sea tac", "sea", "seattle"), ("houston intercontinental", "iah", "houston"),
    ("hobby", "hou", "houston"), ("mccarran international", "las", "las vegas"),
    ("orlando international", "mco", "orlando"), ("sky harbor", "phx", "phoenix"),
    ("detroit metro", "dtw", "detroit"), ("baltimore washington international", "bwi", "baltimore"),
)
"""(airport name, three-letter code, city it serves)."""

DAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS: tuple[str, ...] = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)
_ORDINAL_UNITS: tuple[str, ...] = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
)
DAY_NUMBERS: tuple[str, ...] = (
    _ORDINAL_UNITS
    + ("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
       "seventeenth", "eighteenth", "nineteenth", "twentieth")
    + tuple(f"twenty {unit}" for unit in _ORDINAL_UNITS)
    + ("thirtieth", "thirty first")
)
"""``first`` .. ``thirty first``."""

TODAY_RELATIVE: tuple[str, ...] = ("today", "tomorrow")
DATE_RELATIVE: tuple[str, ...] = ("next", "this", "this coming")
PERIODS: tuple[str, ...] = ("morning", "morning", "afternoon", "afternoon", "evening", "evening", "night")
"""Periods of day (repeats weight the common ones)."""
PERIOD_MODS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("early", ("morning", "afternoon", "evening")), ("late", ("morning", "afternoon", "evening", "night")),
    ("mid", ("morning", "afternoon")),
)
"""(period modifier, the periods it goes with): ``early morning``, ``late night``."""
YEARS: tuple[str, ...] = ("1991", "1992", "1993", "1994")

DEPART_TIME_RELATIVE: tuple[str, ...] = (
    "before", "before", "after", "after", "around", "about", "earlier than", "later than",
    "no later than", "no earlier than",
)
ARRIVE_TIME_RELATIVE: tuple[str, ...] = (
    "before", "before", "by", "by", "after", "around", "no later than", "earlier than",
)
FLIGHT_MODS: tuple[str, ...] = ("earliest", "latest", "first", "last", "next")
COST_SUPERLATIVES: tuple[str, ...] = ("cheapest", "cheapest", "lowest", "least expensive", "most expensive")
COST_BOUNDS: tuple[str, ...] = ("less than", "under", "below", "no more than", "more than")
CLASS_TYPES: tuple[str, ...] = ("first class", "business class", "coach", "economy", "thrift")
ROUND_TRIPS: tuple[str, ...] = ("round trip", "round trip", "one way")
FLIGHT_STOPS: tuple[str, ...] = ("nonstop", "nonstop", "non stop", "direct", "one stop")
FLIGHT_DAYS: tuple[str, ...] = ("daily", "every day")
MEAL_DESCRIPTIONS: tuple[str, ...] = ("breakfast", "lunch", "dinner", "snacks", "brunch")
AIRCRAFT: tuple[str, ...] = (
    "737", "747", "757", "767", "727", "dc9", "dc10", "md80", "l1011", "a320", "j31", "d9s",
    "f28",
)
TRANSPORT_TYPES: tuple[str, ...] = (
    "taxi", "taxi", "limousine", "limo", "rental car", "rental car", "bus", "shuttle", "air taxi",
)
FARE_BASIS_CODES: tuple[str, ...] = ("qx", "qw", "qo", "y", "f", "h", "bh", "m", "yn", "fn", "k")
RESTRICTION_CODES: tuple[str, ...] = ("ap 57", "ap 80", "ap 68", "ap", "s")
DAYS_CODES: tuple[str, ...] = ("sa", "su", "x7")
BOOKING_CLASSES: tuple[str, ...] = ("q", "v", "l")
"""Only in the dev/test quirk utterances (slot ``booking_class``)."""

PREFIXES: tuple[str, ...] = ("yes", "okay", "hello", "hi", "now", "and", "um", "uh")
SUFFIXES: tuple[str, ...] = ("please", "please", "thank you", "thanks")
FILLERS: tuple[str, ...] = ("uh", "um")
"""Hesitations dropped between two phrases of a request."""

OPENERS: tuple[tuple[str, tuple[str, ...], bool, bool, tuple[str, ...]], ...] = (
    # opener, determiners, plural head?, superlatives allowed?, words after the head
    ("show me", ("", "the", "all", "all the"), True, True, ("",)),
    ("please show me", ("", "the", "all"), True, True, ("",)),
    ("can you show me", ("", "the", "all the"), True, True, ("",)),
    ("could you show me", ("", "the"), True, True, ("",)),
    ("list", ("", "the", "all"), True, True, ("",)),
    ("please list", ("", "all", "the"), True, True, ("",)),
    ("could you please list", ("the", "all"), True, True, ("",)),
    ("give me", ("the", "all the", "a list of"), True, True, ("",)),
    ("find", ("", "all", "the"), True, True, ("",)),
    ("what are", ("the",), True, True, ("",)),
    ("may i see", ("the", "all"), True, True, ("",)),
    ("i'd like to see", ("", "the", "all"), True, True, ("",)),
    ("i need information on", ("", "the"), True, True, ("",)),
    ("", ("",), True, False, ("",)),
    ("are there any", ("",), True, False, ("",)),
    ("do you have any", ("",), True, False, ("",)),
    ("what", ("",), True, False, ("", "are there", "are available", "do you have", "go")),
    ("which", ("",), True, False, ("go", "fly", "are there")),
    ("is there a", ("",), False, False, ("",)),
    ("i'd like", ("a", "to book a", "to find a"), False, True, ("",)),
    ("i would like", ("a", "to book a"), False, True, ("",)),
    ("i need", ("a", "to find a"), False, True, ("",)),
    ("i want", ("a",), False, True, ("",)),
    ("i'm looking for", ("a",), False, True, ("",)),
    ("please find me", ("a",), False, True, ("",)),
    ("we need", ("a",), False, True, ("",)),
    ("could i get", ("a",), False, True, ("",)),
    ("book me", ("a",), False, True, ("",)),
)

# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _o(text: str) -> list[Seg]:
    """Words outside any slot (nothing for an empty string)."""
    return [(text, None)] if text else []


def _s(slot: str, text: str) -> list[Seg]:
    """Words that fill ``slot``."""
    return [(text, slot)]


class _Draw:
    """The random choices of one split."""

    def __init__(self, rng: random.Random, unseen_cities: bool) -> None:
        self.rng = rng
        self.unseen_cities = unseen_cities

    def p(self, prob: float) -> bool:
        return self.rng.random() < prob

    def pick(self, items: Sequence[T]) -> T:
        return items[self.rng.randrange(len(items))]

    def weighted(self, items: Sequence[tuple[T, float]]) -> T:
        x = self.rng.random() * sum(weight for _, weight in items)
        for item, weight in items:
            x -= weight
            if x < 0:
                return item
        return items[-1][0]

    def city(self, *avoid: str) -> str:
        while True:
            pool = UNSEEN_CITIES if self.unseen_cities and self.p(P_UNSEEN_CITY) else CITIES
            name = self.pick(pool)[0]
            if name not in avoid:
                return name

    def airline(self) -> tuple[str, str]:
        return self.pick(AIRLINES)

    def airport(self, *avoid: str) -> tuple[str, str, str]:
        while True:
            airport = self.pick(AIRPORTS)
            if airport[2] not in avoid:
                return airport

    def clock(self) -> str:
        """A clock time as said in requests: ``5 pm``, ``1030 am``, ``1700``, ``noon``."""
        hour = self.rng.randint(1, 12)
        form = self.rng.random()
        if form < 0.45:
            return f"{hour} {self.pick(('am', 'pm'))}"
        if form < 0.6:
            return f"{hour}{self.pick(('15', '30', '30', '45'))} {self.pick(('am', 'pm'))}"
        if form < 0.72:
            return f"{self.rng.randint(5, 23)}{self.pick(('00', '15', '30', '30', '45'))}"
        if form < 0.82:
            return f"{hour} o'clock"
        if form < 0.87:
            return str(hour)
        return self.pick(("noon", "noon", "midnight"))

    def flight_number(self) -> str:
        return str(self.weighted(((self.rng.randint(100, 999), 6), (self.rng.randint(1000, 2999), 3),
                                  (self.rng.randint(10, 99), 1))))

    def fare(self) -> str:
        amount = 25 * self.rng.randint(3, 48)
        return f"$ {amount}" if self.p(0.5) else f"{amount} dollars"


def _period(d: _Draw, role: str, mod: float = 0.15) -> list[Seg]:
    """A period of day in ``role`` (a ``*_time`` role), sometimes modified: ``early morning``."""
    if d.p(mod):
        modifier, periods = d.pick(PERIOD_MODS)
        return _s(f"{role}.period_mod", modifier) + _s(f"{role}.period_of_day", d.pick(periods))
    return _s(f"{role}.period_of_day", d.pick(PERIODS))


def _plural(plural: bool, singular_verb: str, plural_verb: str) -> str:
    return plural_verb if plural else singular_verb


def _airport_name(d: _Draw, slot: str, name: str) -> list[Seg]:
    """An airport name, sometimes followed by the word ``airport``.

    As in ATIS, annotators disagree on whether that ``airport`` belongs to the name: it is
    inside the span half of the time.
    """
    if not d.p(0.35):
        return _s(slot, name)
    if d.p(0.5):
        return _s(slot, f"{name} airport")
    return _s(slot, name) + _o("airport")


def _stop_pp(d: _Draw, *avoid: str) -> list[Seg]:
    """``stopping in dallas``, ``via denver``, ``with a stop at o'hare``."""
    if d.p(0.08):
        name = d.airport(*avoid)[0]
        lead = d.pick(("with a stop at", "stopping at", "via", "through"))
        return _o(lead) + _airport_name(d, "stoploc.airport_name", name)
    return _o(d.pick(STOP_LEADS)) + _s("stoploc.city_name", d.city(*avoid))


def _place(d: _Draw, role: str, *avoid: str) -> tuple[list[Seg], str]:
    """A city (mostly), an airport name or an airport code in ``role`` (fromloc/toloc)."""
    form = d.rng.random()
    if form < 0.07:
        name, _, city = d.airport(*avoid)
        return _airport_name(d, f"{role}.airport_name", name), city
    if form < 0.10:
        _, code, city = d.airport(*avoid)
        return _s(f"{role}.airport_code", code), city
    city = d.city(*avoid)
    segs = _s(f"{role}.city_name", city)
    if STATE_OF[city] and d.p(0.04):
        segs += _s(f"{role}.state_name", STATE_OF[city])
    return segs, city


FROM_LEADS: tuple[tuple[str, float], ...] = (
    ("from", 72), ("leaving", 9), ("departing from", 5), ("departing", 3), ("out of", 6),
    ("originating in", 2), ("leaving from", 3),
)
TO_LEADS: tuple[tuple[str, float], ...] = (
    ("to", 74), ("going to", 7), ("arriving in", 7), ("into", 4), ("flying into", 3),
    ("headed to", 2), ("flying to", 3),
)
STOP_LEADS: tuple[str, ...] = (
    "stopping in", "with a stopover in", "via", "with a stop in", "by way of",
    "making a stop in", "stopping over in",
)


def _date(d: _Draw, role: str, lead: str = "on", period: bool = False) -> list[Seg]:
    """A date in ``role`` (depart_date/arrive_date/return_date), e.g. ``on may fifth``.

    With ``period`` a day name may be followed by a period of day (``on monday morning``) that
    belongs to the matching ``*_time`` role.
    """
    if role == "depart_date":
        form = d.rng.random()
        if form < 0.08:
            segs = _s(f"{role}.today_relative", d.pick(TODAY_RELATIVE))
            if period and segs[0][0] == "tomorrow" and d.p(0.4):
                segs += _period(d, "depart_time")
            return segs
        if form < 0.16:
            return _s(f"{role}.date_relative", d.pick(DATE_RELATIVE)) + _s(f"{role}.day_name", d.pick(DAYS))
        if form < 0.21:
            first = d.pick(DAYS)
            second = d.pick(tuple(day for day in DAYS if day != first))
            return (_o(lead) + _s(f"{role}.day_name", first) + _s("or", "or")
                    + _s(f"{role}.day_name", second))
    elif d.p(0.06):  # rarer relative arrival/return dates: "arriving tomorrow", "returning next friday"
        if role == "arrive_date" and d.p(0.5):
            return _s(f"{role}.today_relative", d.pick(TODAY_RELATIVE))
        return _s(f"{role}.date_relative", "next") + _s(f"{role}.day_name", d.pick(DAYS))
    year = _s(f"{role}.year", d.pick(YEARS)) if role == "depart_date" and d.p(0.05) else []
    form = d.rng.random()
    if form < 0.45:
        segs = _o(lead) + _s(f"{role}.day_name", d.pick(DAYS))
        if period and d.p(0.25 if role != "return_date" else 0.1):
            segs += _period(d, role.replace("date", "time"))
        return segs
    if form < 0.75:
        return (_o(lead) + _s(f"{role}.month_name", d.pick(MONTHS)) + _s(f"{role}.day_number", d.pick(DAY_NUMBERS))
                + year)
    if form < 0.9:
        return (_o(f"{lead} the".strip()) + _s(f"{role}.day_number", d.pick(DAY_NUMBERS)) + _o("of")
                + _s(f"{role}.month_name", d.pick(MONTHS)) + year)
    return _o(f"{lead} the".strip()) + _s(f"{role}.day_number", d.pick(DAY_NUMBERS))


def _time(d: _Draw, role: str) -> list[Seg]:
    """A time constraint in ``role`` (depart_time/arrive_time), e.g. ``before 5 pm``."""
    relatives = DEPART_TIME_RELATIVE if role == "depart_time" else ARRIVE_TIME_RELATIVE
    form = d.rng.random()
    if form < 0.38:
        return _s(f"{role}.time_relative", d.pick(relatives)) + _s(f"{role}.time", d.clock())
    if form < 0.55:
        return _o("at") + _s(f"{role}.time", d.clock())
    if form < 0.82:
        segs = _period(d, role)
        lead = "at" if segs[-1][0] == "night" else d.pick(("in the", "in the", "sometime in the"))
        return _o(lead) + segs
    if form < 0.9:
        start, end = d.clock(), d.clock()
        while end == start:
            end = d.clock()
        return _o("between") + _s(f"{role}.start_time", start) + _o("and") + _s(f"{role}.end_time", end)
    segs = _period(d, role)
    if segs[-1][0] == "night":
        segs = _s(f"{role}.period_of_day", "evening")
    return _s(f"{role}.time_relative", d.pick(("before", "after"))) + _o("the") + segs


def _return(d: _Draw) -> list[Seg]:
    """A return phrase: ``and return on friday``, ``returning may seventh``."""
    lead = d.pick(("and return", "and returning", "returning", "and coming back", "coming back",
                   "and fly back", "with the return"))
    on = "on" if lead == "with the return" else d.pick(("on", "on", ""))
    return _o(lead) + _date(d, "return_date", lead=on, period=True)


def _airline_pp(d: _Draw) -> list[Seg]:
    name, code = d.airline()
    lead = d.pick(("on", "on", "with", "flying", "on", "by"))
    if d.p(0.12):
        return _o(lead) + _s("airline_code", code)
    return _o(lead) + _s("airline_name", name)


def _meal_phrase(d: _Draw, plural: bool) -> list[Seg]:
    if d.p(0.3):
        return _o(d.pick(("with a", "that " + _plural(plural, "has a", "have a"), "serving a"))) + _s("meal", "meal")
    verb = d.pick(("that " + _plural(plural, "serves", "serve"), "serving", "with"))
    return _o(verb) + _s("meal_description", d.pick(MEAL_DESCRIPTIONS))


def _aircraft_pp(d: _Draw, plural: bool) -> list[Seg]:
    lead = d.pick(("on a", "using a", "that " + _plural(plural, "uses a", "use a"), "flying a"))
    return _o(lead) + _s("aircraft_code", d.pick(AIRCRAFT))


def _cost_pp(d: _Draw, plural: bool) -> list[Seg]:
    lead = d.pick(("for", "for", "that " + _plural(plural, "costs", "cost"), "costing"))
    return _o(lead) + _s("cost_relative", d.pick(COST_BOUNDS)) + _s("fare_amount", d.fare())


# --------------------------------------------------------------------------------------------
# atis_flight: the compositional frame
# --------------------------------------------------------------------------------------------

_Render = Callable[[str], tuple[list[Seg], str]]
"""Renders a phrase given the current time/date role ("depart"/"arrive"); returns the new one."""


def _fixed(segs: list[Seg], mode: str | None = None) -> _Render:
    return lambda current: (segs, mode or current)


P_ARRIVE_AS_DEPART = 0.25
"""How often a bare date/time governed by an earlier ``arriving in``-phrase is tagged ``depart_*``."""


def _annotated(d: _Draw, mode: str) -> str:
    """The role an annotator gives a bare date/time in ``mode``.

    After ``flights from boston arriving in denver`` a bare ``on monday`` is an arrival date, but
    as in ATIS the annotation is not consistent: :data:`P_ARRIVE_AS_DEPART` of them say depart.
    """
    return "depart" if mode == "arrive" and d.p(P_ARRIVE_AS_DEPART) else mode


def _date_pp(d: _Draw, period: bool) -> _Render:
    verb = d.weighted((("", 78), ("leaving", 8), ("departing", 5), ("arriving", 9)))

    def render(mode: str) -> tuple[list[Seg], str]:
        if verb == "arriving":
            return _o(verb) + _date(d, "arrive_date", period=period), "arrive"
        if verb:
            return _o(verb) + _date(d, "depart_date", period=period), "depart"
        return _date(d, f"{_annotated(d, mode)}_date", period=period), mode

    return render


def _time_pp(d: _Draw) -> _Render:
    verb = d.weighted((("", 70), ("leaving", 12), ("departing", 6), ("arriving", 12)))

    def render(mode: str) -> tuple[list[Seg], str]:
        if verb == "arriving":
            return _o(verb) + _time(d, "arrive_time"), "arrive"
        if verb:
            return _o(verb) + _time(d, "depart_time"), "depart"
        return _time(d, f"{_annotated(d, mode)}_time"), mode

    return render


def _premods(d: _Draw, superlative_ok: bool) -> tuple[list[Seg], list[str]]:
    """Words before ``flight(s)``: ``the cheapest nonstop delta morning flights``.

    Returns the segments and the kinds of modifier chosen.
    """
    kinds = (("superlative", 22 if superlative_ok else 0), ("round_trip", 14), ("flight_stop", 18),
             ("airline", 20), ("class_type", 9), ("period", 12), ("connect", 3), ("days", 2))
    count = d.weighted(((0, 50), (1, 35), (2, 12), (3, 3)))
    chosen: list[str] = []
    for _ in range(count):
        kind = d.weighted(kinds)
        if kind not in chosen:
            chosen.append(kind)
    segs: list[Seg] = []
    for kind, _ in kinds:  # a fixed, natural order
        if kind not in chosen:
            continue
        if kind == "superlative":
            segs += (_s("flight_mod", d.pick(FLIGHT_MODS)) if d.p(0.6)
                     else _s("cost_relative", d.pick(COST_SUPERLATIVES)))
        elif kind == "round_trip":
            segs += _s("round_trip", d.pick(ROUND_TRIPS))
        elif kind == "flight_stop":
            segs += _s("flight_stop", d.pick(FLIGHT_STOPS))
        elif kind == "airline":
            name, code = d.airline()
            segs += _s("airline_code", code) if d.p(0.1) else _s("airline_name", name)
        elif kind == "class_type":
            segs += _s("class_type", d.pick(CLASS_TYPES))
        elif kind == "period":
            segs += _period(d, "depart_time")
        elif kind == "connect":
            segs += _s("connect", "connecting")
        else:
            segs += _s("flight_days", "daily")
    return segs, chosen


def _determiner(det: str, superlative: bool) -> str:
    if not superlative:
        return det
    words = det.split()
    if words and words[-1] == "a":
        return " ".join(words[:-1] + ["the"])
    return "the"


def f_compositional(d: _Draw) -> list[Seg]:
    """``<opener> <det> <premods> flight(s) <from/to and extras in varied order> <clauses>``."""
    opener, dets, plural, superlative_ok, afters = d.pick(OPENERS)
    pre, premods = _premods(d, superlative_ok)
    head = _o(_determiner(d.pick(dets), "superlative" in premods)) + pre + _o("flights" if plural else "flight")
    after = d.pick(afters)
    out = _o(opener) + head + _o(after)
    plain_leads = after in ("go", "fly")  # "what flights go from ..", not "go departing .."

    core: list[_Render] = []
    has = d.weighted((("both", 86), ("to", 8), ("from", 6)))
    from_city = ""
    if has in ("both", "from"):
        lead = "from" if plain_leads else d.weighted(FROM_LEADS)
        segs, from_city = _place(d, "fromloc")
        core.append(_fixed(_o(lead) + segs, "depart" if lead.startswith(("leaving", "departing")) else None))
    to_city = ""
    if has in ("both", "to"):
        lead = "to" if plain_leads else d.weighted(TO_LEADS)
        segs, to_city = _place(d, "toloc", from_city)
        core.append(_fixed(_o(lead) + segs, "arrive" if lead == "arriving in" else None))
    if len(core) == 2 and d.p(0.2):
        core.reverse()

    extras = d.weighted(((0, 25), (1, 36), (2, 25), (3, 10), (4, 4)))
    kinds = (("date", 30), ("time", 20), ("arrive", 9), ("stop", 6), ("airline", 6), ("class", 4),
             ("meal", 3), ("aircraft", 3), ("cost", 3), ("days", 2), ("return", 6))
    said_before = {"airline": "airline", "class": "class_type", "days": "days"}
    chosen: list[str] = []
    for _ in range(extras):
        kind = d.weighted(kinds)
        if kind not in chosen and said_before.get(kind) not in premods:
            chosen.append(kind)
    if "return" in chosen and "date" not in chosen:
        chosen.append("date")

    pps: list[_Render] = list(core)
    clauses: list[_Render] = []
    that = "that " + _plural(plural, "arrives", "arrive")
    for kind in chosen:
        if kind == "date":
            item = _date_pp(d, period="time" not in chosen and d.p(0.5))
        elif kind == "time":
            item = _time_pp(d)
        elif kind == "arrive":  # a relative clause about the arrival
            if d.p(0.7):
                clauses.append(_fixed(_o(that) + _time(d, "arrive_time"), "arrive"))
            else:
                clauses.append(_fixed(_o(that) + _date(d, "arrive_date", period=True), "arrive"))
            continue
        elif kind == "stop":
            stop = d.city(from_city, to_city)
            if d.p(0.3):
                clauses.append(_fixed(_o("that " + _plural(plural, "stops", "stop") + " in")
                                      + _s("stoploc.city_name", stop)))
                continue
            item = _fixed(_stop_pp(d, from_city, to_city))
        elif kind == "airline":
            item = _fixed(_airline_pp(d))
        elif kind == "class":
            item = _fixed(_o(d.pick(("in", "", "in"))) + _s("class_type", d.pick(CLASS_TYPES)))
        elif kind == "meal":
            clauses.append(_fixed(_meal_phrase(d, plural)))
            continue
        elif kind == "aircraft":
            item = _fixed(_aircraft_pp(d, plural))
        elif kind == "cost":
            clauses.append(_fixed(_cost_pp(d, plural)))
            continue
        elif kind == "days":
            verb = "that " + _plural(plural, d.pick(("flies", "leaves")), d.pick(("fly", "leave")))
            clauses.append(_fixed(_o(verb) + _s("flight_days", d.pick(FLIGHT_DAYS))))
            continue
        else:  # return: always last
            continue
        if d.p(0.65):
            pps.append(item)
        else:
            pps.insert(d.rng.randint(0, len(pps)), item)

    mode = "depart"
    for render in pps + clauses:
        segs, mode = render(mode)
        out += segs
    if "return" in chosen:
        out += _return(d)
    return out


# --------------------------------------------------------------------------------------------
# atis_flight: fixed frames
# --------------------------------------------------------------------------------------------


def _cities(d: _Draw, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        out.append(d.city(*out))
    return out


def f_bare_pair(d: _Draw) -> list[Seg]:
    """``boston to denver on monday``: the first city is the origin because ``to`` follows."""
    a, b = _cities(d, 2)
    pair = _s("fromloc.city_name", a) + _o("to") + _s("toloc.city_name", b)
    form = d.rng.random()
    if form < 0.35:
        out = _o("flights") + pair
    elif form < 0.6:
        out = pair + _o(d.pick(("flights", "flight", "nonstop")))
        if out[-1][0] == "nonstop":
            out[-1] = ("nonstop", "flight_stop")
    elif form < 0.8:
        out = _o(d.pick(("show me", "list", "i need"))) + pair
    else:
        out = pair
    if d.p(0.6):
        out += _date(d, "depart_date", lead=d.pick(("on", "")))
    if d.p(0.25):
        out += _time(d, "depart_time")
    return out


def f_need_arrive(d: _Draw) -> list[Seg]:
    """``i need to be in denver by 5 pm on monday coming from boston``: arrival from far left."""
    to, frm = _cities(d, 2)
    out = _o(d.pick(("i need to", "i have to", "i want to", "i'd like to", "i must", "we need to")))
    out += _o(d.pick(("arrive in", "be in", "get to", "get into", "arrive in"))) + _s("toloc.city_name", to)
    if d.p(0.3):
        out += _o("from") + _s("fromloc.city_name", frm)
        frm = ""
    parts = [_time(d, "arrive_time"), _date(d, "arrive_date", period=False)]
    if d.p(0.4):
        parts.reverse()
    if d.p(0.2):
        parts.pop(d.rng.randint(0, 1))
    for part in parts:
        out += part
    if frm and d.p(0.6):
        out += _o(d.pick(("coming from", "leaving from", "flying from", "from", "and i'm leaving from")))
        out += _s("fromloc.city_name", frm)
    if d.p(0.3):
        out += _o(d.pick(("what flights do you have", "what are my options", "please")))
    return out


def f_leave_and_arrive(d: _Draw) -> list[Seg]:
    """``i want to leave boston on monday morning and arrive in denver before 5 pm``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i want to", "i'd like to", "i need to", "i would like to", "we want to")))
    out += _o(d.pick(("leave", "depart from", "leave from", "fly out of"))) + _s("fromloc.city_name", frm)
    if d.p(0.7):
        out += _date(d, "depart_date", period=True)
    if d.p(0.5):
        out += _time(d, "depart_time")
    out += _o(d.pick(("and arrive in", "and get to", "and arrive in", "and be in"))) + _s("toloc.city_name", to)
    if d.p(0.8):
        out += _time(d, "arrive_time")
    return out


def f_fly_from_to(d: _Draw) -> list[Seg]:
    """``i'd like to fly from boston to denver tomorrow after 5 pm``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i want to fly", "i'd like to fly", "i need to fly", "i would like to travel",
                     "i'm traveling", "we want to go", "i'd like to go", "i need to travel",
                     "i am flying", "we'd like to fly")))
    route = [_o("from") + _s("fromloc.city_name", frm), _o("to") + _s("toloc.city_name", to)]
    if d.p(0.25):
        route.reverse()
    out += route[0] + route[1]
    if d.p(0.7):
        out += _date(d, "depart_date", period=True)
    if d.p(0.35):
        out += _time(d, "depart_time")
    if d.p(0.15):
        out += _o("on") + _s("airline_name", d.airline()[0])
    return out


def f_go_to_from(d: _Draw) -> list[Seg]:
    """``i'm going to denver from boston next monday in the morning``."""
    to, frm = _cities(d, 2)
    out = _o(d.pick(("i'm going to", "i'll be going to", "i need to go to", "i have to go to",
                     "we're going to", "i want to go to")))
    out += _s("toloc.city_name", to)
    if d.p(0.5):
        out += _date(d, "depart_date") + _o("from") + _s("fromloc.city_name", frm)
    else:
        out += _o("from") + _s("fromloc.city_name", frm) + _date(d, "depart_date")
    if d.p(0.35):
        out += _time(d, "depart_time")
    if d.p(0.3):
        out += _o(d.pick(("what flights are there", "which flights can i take", "what do you have")))
    return out


def f_round_trip(d: _Draw) -> list[Seg]:
    """``i need a round trip flight from boston to denver leaving may fifth and returning ...``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i need a", "i'd like a", "i want a", "please find a", "show me a", "book a")))
    out += _s("round_trip", "round trip") + _o(d.pick(("flight", "ticket", "flight")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    out += _o(d.pick(("leaving", "departing", "going", ""))) + _date(d, "depart_date", period=True)
    out += _o(d.pick(("and returning", "and coming back", "returning", "and back")))
    out += _date(d, "return_date", lead=d.pick(("on", "")))
    return out


def f_return_noun(d: _Draw) -> list[Seg]:
    """``... with a friday return``: the day is a return date because of the word after it."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i'd like a flight", "i need a flight", "show me flights", "find me a flight")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    out += _date(d, "depart_date")
    if d.p(0.7):
        out += _o("with a") + _s("return_date.day_name", d.pick(DAYS)) + _o("return")
    else:
        out += _o("with the return") + _date(d, "return_date")
    return out


def f_time_noun(d: _Draw) -> list[Seg]:
    """``is there a 5 pm departure from boston to denver``: role given by the next word."""
    frm, to = _cities(d, 2)
    role = d.pick(("depart_time", "arrive_time"))
    noun = "departure" if role == "depart_time" else "arrival"
    value = _s(f"{role}.time", d.clock()) if d.p(0.65) else _period(d, role)
    out = _o(d.pick(("is there a", "i'd like a", "do you have a", "i need a", "i want a")))
    out += value + _o(noun)
    if role == "depart_time":
        out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    else:
        out += _o("in") + _s("toloc.city_name", to) + _o("from") + _s("fromloc.city_name", frm)
    if d.p(0.5):
        out += _date(d, "depart_date")
    return out


def f_time_premod(d: _Draw) -> list[Seg]:
    """``i'd like to book the 5 pm flight from boston to denver``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i'd like to book the", "give me the", "tell me about the", "is there a",
                     "what about the", "i want the")))
    out += _s("depart_time.time", d.clock()) + _o("flight from") + _s("fromloc.city_name", frm)
    out += _o("to") + _s("toloc.city_name", to)
    if d.p(0.5):
        out += _date(d, "depart_date")
    return out


def f_flight_number(d: _Draw) -> list[Seg]:
    """``i'd like information on delta flight 1291 from boston to denver``."""
    out = _o(d.pick(("show me information on", "i'd like information on", "give me details of",
                     "tell me about", "i want to book", "what about", "is there seating on")))
    name, code = d.airline()
    form = d.rng.random()
    if form < 0.4:
        out += _s("airline_name", name) + _o("flight")
    elif form < 0.55:
        out += _o("flight") + _s("airline_code", code)
    else:
        out += _o("flight")
    out += _s("flight_number", d.flight_number())
    if d.p(0.4):
        frm, to = _cities(d, 2)
        out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.3):
        out += _date(d, "depart_date")
    return out


def f_airline_code_flights(d: _Draw) -> list[Seg]:
    """``list ua flights from boston to denver``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("list", "show me", "show me the", "what are the", "find")))
    out += _s("airline_code", d.airline()[1]) + _o("flights")
    out += _o("from") + _s("fromloc.city_name", frm)
    if d.p(0.8):
        out += _o("to") + _s("toloc.city_name", to)
    return out


def f_stopover(d: _Draw) -> list[Seg]:
    """``what flights go from boston to denver via dallas``."""
    frm, to, stop = _cities(d, 3)
    out = _o(d.pick(("what flights go", "i need a flight", "show me flights", "are there flights",
                     "list flights", "i want to fly")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.5):
        out += _stop_pp(d, frm, to)
    else:
        out += _o(d.pick(("that stops in", "and stop in", "with one stop in", "that goes through")))
        out += _s("stoploc.city_name", stop)
    if d.p(0.3):
        out += _date(d, "depart_date")
    return out


def f_via_first(d: _Draw) -> list[Seg]:
    """``are there any flights via dallas from boston to denver``."""
    frm, to, stop = _cities(d, 3)
    if d.p(0.5):
        out = _o(d.pick(("are there any flights", "show me flights", "list flights")))
        out += _o(d.pick(STOP_LEADS)) + _s("stoploc.city_name", stop)
        out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    else:
        out = _o("i want to go from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
        out += _o("and stop in") + _s("stoploc.city_name", stop) + _o(d.pick(("on the way", "", "too")))
    return out


def f_connecting(d: _Draw) -> list[Seg]:
    """``show me connecting flights from boston to denver``."""
    frm, to, stop = _cities(d, 3)
    opener, noun = d.pick((("show me", "flights"), ("i need a", "flight"), ("are there any", "flights"),
                           ("list", "flights"), ("i'd like a", "flight"), ("find", "flights")))
    out = _o(opener) + _s("connect", "connecting") + _o(noun) + _o("from") + _s("fromloc.city_name", frm)
    out += _o("to") + _s("toloc.city_name", to)
    if d.p(0.4):
        out += _o(d.pick(("through", "in"))) + _s("stoploc.city_name", stop)
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def f_airports(d: _Draw) -> list[Seg]:
    """``flights from la guardia to denver``, ``from boston into o'hare``."""
    out = _o(d.pick(("flights", "show me flights", "what flights go", "i need a flight", "list flights")))
    name, _, city = d.airport()
    if d.p(0.5):
        out += _o("from") + _airport_name(d, "fromloc.airport_name", name)
        out += _o("to") + _s("toloc.city_name", d.city(city))
    else:
        out += _o("from") + _s("fromloc.city_name", d.city(city))
        out += _o(d.pick(("to", "into", "arriving at"))) + _airport_name(d, "toloc.airport_name", name)
    if d.p(0.4):
        out += _time(d, "depart_time")
    return out


def f_airport_codes(d: _Draw) -> list[Seg]:
    """``what flights leave bos for den``."""
    first = d.airport()
    second = d.airport(first[2])
    out = _o(d.pick(("flights from", "what flights leave", "show me flights from", "list flights from")))
    out += _s("fromloc.airport_code", first[1]) + _o(d.pick(("to", "for")))
    out += _s("toloc.airport_code", second[1])
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def f_states(d: _Draw) -> list[Seg]:
    """``flights from boston to denver colorado``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("flights", "show me flights", "i need a flight", "what flights go")))
    out += _o("from") + _s("fromloc.city_name", frm)
    if STATE_OF[frm] and d.p(0.4):
        out += _s("fromloc.state_name", STATE_OF[frm])
    out += _o("to") + _s("toloc.city_name", to)
    if STATE_OF[to]:
        out += _s("toloc.state_name", STATE_OF[to])
    if d.p(0.3):
        out += _date(d, "depart_date")
    return out


def f_what_flights_verb(d: _Draw) -> list[Seg]:
    """``what flights leave boston for denver on monday`` vs ``... arrive in denver ... on monday``."""
    frm, to = _cities(d, 2)
    opener = d.pick(("what flights", "which flights", "show me the flights that", "list the flights that"))
    if d.p(0.5):
        out = _o(opener) + _o(d.pick(("leave", "depart", "depart from"))) + _s("fromloc.city_name", frm)
        out += _o(d.pick(("for", "to", "and go to", "going to"))) + _s("toloc.city_name", to)
        role = "depart"
    else:
        out = _o(opener) + _o(d.pick(("arrive in", "land in", "get into", "arrive at"))) + _s("toloc.city_name", to)
        out += _o("from") + _s("fromloc.city_name", frm)
        role = "arrive"
    form = d.rng.random()
    if form < 0.4:
        out += _date(d, f"{role}_date", period=True)
    elif form < 0.75:
        out += _time(d, f"{role}_time")
    else:
        out += _date(d, f"{role}_date") + _time(d, f"{role}_time")
    return out


def f_does_airline(d: _Draw) -> list[Seg]:
    """``does delta have a flight from boston to denver on monday``."""
    frm, to = _cities(d, 2)
    out = _o("does") + _s("airline_name", d.airline()[0])
    out += _o(d.pick(("fly", "have a flight", "have any flights", "have a nonstop flight", "go")))
    if out[-1][0] == "have a nonstop flight":
        out[-1:] = _o("have a") + _s("flight_stop", "nonstop") + _o("flight")
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def f_meal_flight(d: _Draw) -> list[Seg]:
    """``i want a flight from boston to denver that serves breakfast``."""
    frm, to = _cities(d, 2)
    plural = d.p(0.5)
    out = _o("are there any flights" if plural else "i want a flight")
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.3):
        out += _date(d, "depart_date")
    return out + _meal_phrase(d, plural)


def f_aircraft_flight(d: _Draw) -> list[Seg]:
    """``show me flights from boston to denver on a 747``."""
    frm, to = _cities(d, 2)
    plural = d.p(0.6)
    out = _o(d.pick(("show me flights", "which flights", "list flights")) if plural else "is there a flight")
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    return out + _aircraft_pp(d, plural)


def f_days(d: _Draw) -> list[Seg]:
    """``what flights from boston to denver fly daily``."""
    frm, to = _cities(d, 2)
    form = d.rng.random()
    route = _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if form < 0.4:
        return _o("what flights") + route + _o(d.pick(("fly", "leave", "go"))) + _s("flight_days", d.pick(FLIGHT_DAYS))
    if form < 0.7:
        return _o(d.pick(("i need a", "is there a", "show me the"))) + _s("flight_days", "daily") + _o("flight") + route
    return _o("are there flights") + _s("flight_days", "every day") + route


def f_or(d: _Draw) -> list[Seg]:
    """``flights from boston to denver or dallas``, ``... on monday or tuesday``."""
    frm, to, alt = _cities(d, 3)
    out = _o(d.pick(("flights", "show me flights", "i need a flight", "list flights")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.5):
        out += _s("or", "or") + _s("toloc.city_name", alt)
        if d.p(0.4):
            out += _date(d, "depart_date")
    else:
        first = d.pick(DAYS)
        second = d.pick(tuple(day for day in DAYS if day != first))
        out += _o("on") + _s("depart_date.day_name", first) + _s("or", "or") + _s("depart_date.day_name", second)
    return out


def f_cost_bound(d: _Draw) -> list[Seg]:
    """``find me a flight from boston to denver for less than $ 300``."""
    frm, to = _cities(d, 2)
    route = _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    bound = _s("cost_relative", d.pick(COST_BOUNDS)) + _s("fare_amount", d.fare())
    if d.p(0.5):
        return _o(d.pick(("find me a flight", "i need a flight", "is there a flight"))) + route + _o("for") + bound
    return _o(d.pick(("flights", "show me flights", "list flights"))) + bound + route


def f_flight_mod_question(d: _Draw) -> list[Seg]:
    """``what is the earliest flight from boston to denver on monday``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("what is the", "which is the", "give me the", "i'd like the", "show me the")))
    out += _s("flight_mod", d.pick(FLIGHT_MODS))
    if d.p(0.2):
        out += _s("flight_stop", "nonstop")
    if d.p(0.5):
        out += _o("flight from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    else:
        out += _o(d.pick(("flight leaving", "flight out of"))) + _s("fromloc.city_name", frm)
        out += _o(d.pick(("for", "to", "going to"))) + _s("toloc.city_name", to)
    if d.p(0.6):
        out += _date(d, "depart_date", period=True)
    return out


def f_earliest_arrival(d: _Draw) -> list[Seg]:
    """``what is the earliest flight from boston that arrives in denver on monday``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("what is the", "give me the", "show me the"))) + _s("flight_mod", d.pick(FLIGHT_MODS))
    out += _o("flight from") + _s("fromloc.city_name", frm)
    out += _o(d.pick(("that arrives in", "that gets into", "arriving in"))) + _s("toloc.city_name", to)
    out += _date(d, "arrive_date") if d.p(0.6) else _time(d, "arrive_time")
    return out


def f_day_period(d: _Draw) -> list[Seg]:
    """``monday morning flights from boston to denver``."""
    frm, to = _cities(d, 2)
    opener, noun = d.pick((("", "flights"), ("show me", "flights"), ("list", "flights"), ("i need a", "flight"),
                           ("what are the", "flights"), ("is there a", "flight")))
    out = _o(opener)
    if d.p(0.8):
        out += _s("depart_date.day_name", d.pick(DAYS))
    else:
        out += _s("depart_date.today_relative", d.pick(TODAY_RELATIVE))
    out += _period(d, "depart_time") + _o(noun)
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    return out


def f_followup(d: _Draw) -> list[Seg]:
    """``now show me flights from denver back to boston on friday``, ``what about ...``."""
    frm, to = _cities(d, 2)
    form = d.rng.random()
    if form < 0.4:
        out = _o(d.pick(("now show me flights", "now i need a flight", "and now flights")))
        out += _o("from") + _s("fromloc.city_name", frm) + _o("back to") + _s("toloc.city_name", to)
    elif form < 0.7:
        out = _o("what about") + _o(d.pick(("flights", "", "the flights"))) + _o("from")
        out += _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    else:
        out = _o("and from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.7):
        out += _date(d, "depart_date", period=True)
    return out


def f_how_get(d: _Draw) -> list[Seg]:
    """``how can i get from boston to denver on monday``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("how can i get", "how do i fly", "how do i get", "what's the best way to fly")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.6):
        out += _date(d, "depart_date")
    if d.p(0.2):
        out += _o(d.pick(("and arrive", "arriving", "and get there"))) + _time(d, "arrive_time")
    elif d.p(0.2):
        out += _time(d, "depart_time")
    return out


def f_arrive_clause(d: _Draw) -> list[Seg]:
    """``flights from boston that arrive in denver before 5 pm``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("flights", "show me flights", "list all flights", "i need flights")))
    out += _o("from") + _s("fromloc.city_name", frm)
    out += _o(d.pick(("that arrive in", "that get into", "that land in", "arriving in"))) + _s("toloc.city_name", to)
    out += _time(d, "arrive_time")
    if d.p(0.3):
        out += _date(d, "arrive_date")
    return out


def f_airport_departure(d: _Draw) -> list[Seg]:
    """``flights leaving la guardia after 5 pm going to denver``."""
    name, _, city = d.airport()
    out = _o(d.pick(("flights leaving", "what flights depart from", "show me flights out of")))
    out += _airport_name(d, "fromloc.airport_name", name) + _time(d, "depart_time")
    out += _o(d.pick(("going to", "for", "to"))) + _s("toloc.city_name", d.city(city))
    return out


def f_nonstop_to(d: _Draw) -> list[Seg]:
    """``nonstop flights to denver leaving boston tomorrow morning``."""
    to, frm = _cities(d, 2)
    out = _o(d.pick(("", "show me", "i need"))) + _s("flight_stop", d.pick(FLIGHT_STOPS)) + _o("flights to")
    out += _s("toloc.city_name", to) + _o(d.pick(("leaving", "from", "departing"))) + _s("fromloc.city_name", frm)
    out += _date(d, "depart_date", lead=d.pick(("on", "")), period=True)
    return out


def f_trip_story(d: _Draw) -> list[Seg]:
    """A long request: ``i'm planning a trip from boston to denver on may fifth ... come back ...``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i'm planning a trip", "i will be traveling", "my wife and i are going",
                     "i have a meeting and need to go")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    out += _date(d, "depart_date")
    if d.p(0.6):
        out += _o("and i'd like to leave") + _time(d, "depart_time")
    if d.p(0.4):
        out += _o(d.pick(("and get there", "and arrive"))) + _time(d, "arrive_time")
    out += _o(d.pick(("and come back", "and return", "then fly back"))) + _date(d, "return_date")
    if d.p(0.4):
        out += _o(d.pick(("what are my options", "can you help me", "what flights do you have")))
    return out


def f_class_request(d: _Draw) -> list[Seg]:
    """``i'd like a first class ticket on a flight from boston to denver``."""
    frm, to = _cities(d, 2)
    if d.p(0.5):
        out = _o(d.pick(("i'd like a", "i need a", "i want a"))) + _s("class_type", d.pick(CLASS_TYPES))
        out += _o(d.pick(("seat on a flight", "ticket on a flight", "seat")))
    else:
        out = _o(d.pick(("", "show me", "list"))) + _s("class_type", d.pick(CLASS_TYPES)) + _o("flights")
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.5):
        out += _date(d, "depart_date")
    return out


def f_fly_airline(d: _Draw) -> list[Seg]:
    """``i'd like to fly delta from boston to denver on friday``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i'd like to fly", "i prefer to fly", "i want to fly", "i'll fly")))
    out += _s("airline_name", d.airline()[0])
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.6):
        out += _date(d, "depart_date")
    return out


def f_leaving_need_by(d: _Draw) -> list[Seg]:
    """``i'm leaving boston on monday and need to be in denver by noon``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("i'm leaving", "i leave", "i'll be leaving"))) + _s("fromloc.city_name", frm)
    out += _date(d, "depart_date")
    out += _o(d.pick(("and need to be in", "and have to be in", "and must arrive in", "and want to get to")))
    out += _s("toloc.city_name", to) + _time(d, "arrive_time")
    return out


def f_period_question(d: _Draw) -> list[Seg]:
    """``what morning flights are there from boston to denver``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("what", "which", "are there any"))) + _period(d, "depart_time")
    out += _o(d.pick(("flights are there", "flights are available", "flights")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def f_leave_after_arrive_before(d: _Draw) -> list[Seg]:
    """``flights from boston to denver leaving after 8 am and arriving before 5 pm``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("flights", "show me flights", "i need a flight", "find flights")))
    out += _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)
    out += _o("leaving") + _time(d, "depart_time") + _o("and arriving") + _time(d, "arrive_time")
    return out


def f_coordinated(d: _Draw) -> list[Seg]:
    """``flights from boston and dallas to denver``, ``... to denver and from dallas``."""
    a, b, c = _cities(d, 3)
    out = _o(d.pick(("flights", "show me flights", "list all flights", "i need flights")))
    form = d.rng.random()
    if form < 0.4:
        out += _o("from") + _s("fromloc.city_name", a) + _o("and") + _s("fromloc.city_name", b)
        out += _o("to") + _s("toloc.city_name", c)
    elif form < 0.7:
        out += _o("from") + _s("fromloc.city_name", a) + _o("to") + _s("toloc.city_name", b)
        out += _o("and") + _s("toloc.city_name", c)
    else:
        out += _o("to") + _s("toloc.city_name", c) + _o("from") + _s("fromloc.city_name", a)
        out += _o("and from") + _s("fromloc.city_name", b)
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def f_two_legs(d: _Draw) -> list[Seg]:
    """``i want to fly from boston to denver on monday and then from denver to dallas on friday``."""
    a, b, c = _cities(d, 3)
    out = _o(d.pick(("i want to fly", "i need to go", "i'd like to travel", "i'm flying")))
    out += _o("from") + _s("fromloc.city_name", a) + _o("to") + _s("toloc.city_name", b)
    out += _date(d, "depart_date")
    if d.p(0.5):
        out += _o("and then from") + _s("fromloc.city_name", b) + _o("to") + _s("toloc.city_name", c)
    else:
        out += _o(d.pick(("and then on to", "and then continue to", "and from there to"))) + _s("toloc.city_name", c)
    if d.p(0.6):
        out += _date(d, "depart_date")
    return out


def f_between(d: _Draw) -> list[Seg]:
    """``flights between boston and denver on monday``."""
    frm, to = _cities(d, 2)
    out = _o(d.pick(("flights", "show me flights", "list all flights", "what flights are there")))
    out += _o("between") + _s("fromloc.city_name", frm) + _o("and") + _s("toloc.city_name", to)
    if d.p(0.5):
        out += _date(d, "depart_date", period=True)
    return out


# --------------------------------------------------------------------------------------------
# Other intents
# --------------------------------------------------------------------------------------------


def _route(d: _Draw) -> list[Seg]:
    frm, to = _cities(d, 2)
    return _o("from") + _s("fromloc.city_name", frm) + _o("to") + _s("toloc.city_name", to)


def a_ticket_price(d: _Draw) -> list[Seg]:
    """``how much is a round trip ticket from boston to denver``."""
    kind = _s("round_trip", d.pick(ROUND_TRIPS)) if d.p(0.6) else _s("class_type", d.pick(CLASS_TYPES))
    out = _o(d.pick(("how much is a", "how much does a", "what is the price of a", "what's the cost of a")))
    out += kind + _o("ticket") + _route(d)
    if out[0][0] == "how much does a":
        out += _o("cost")
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def a_cheapest_fare(d: _Draw) -> list[Seg]:
    """``what is the cheapest fare from boston to denver on monday``."""
    out = _o(d.pick(("what is the", "what's the", "show me the", "give me the", "i want the")))
    out += _s("cost_relative", d.pick(COST_SUPERLATIVES))
    if d.p(0.3):
        out += _s("round_trip", d.pick(ROUND_TRIPS))
    out += _o(d.pick(("fare", "airfare", "fares", "ticket price"))) + _route(d)
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def a_list_fares(d: _Draw) -> list[Seg]:
    """``list first class fares from boston to denver``."""
    out = _o(d.pick(("show me the", "list", "list all", "what are the", "give me the")))
    if d.p(0.5):
        out += _s("class_type", d.pick(CLASS_TYPES))
    out += _o(d.pick(("fares", "airfares", "prices"))) + _route(d)
    if d.p(0.5):
        out += _date(d, "depart_date")
    return out


def a_airline_ticket_cost(d: _Draw) -> list[Seg]:
    """``what does a one way ticket on delta from boston to denver cost``."""
    out = _o("what does a") + _s("round_trip", d.pick(ROUND_TRIPS)) + _o("ticket on")
    out += _s("airline_name", d.airline()[0]) + _route(d) + _o("cost")
    return out


def a_flight_fare(d: _Draw) -> list[Seg]:
    """``what is the fare on flight 1291``."""
    if d.p(0.5):
        out = _o("what is the fare on flight") + _s("flight_number", d.flight_number())
        if d.p(0.5):
            out += _route(d)
        return out
    return _o("how much does") + _s("airline_name", d.airline()[0]) + _o("flight") + _s(
        "flight_number", d.flight_number()) + _o("cost")


def a_airline_fares(d: _Draw) -> list[Seg]:
    """``what are the round trip fares on united from boston to denver``."""
    out = _o(d.pick(("what are the", "show me the", "list the"))) + _s("round_trip", d.pick(ROUND_TRIPS))
    out += _o("fares on") + _s("airline_name", d.airline()[0]) + _route(d)
    if d.p(0.4):
        out += _date(d, "depart_date")
    return out


def a_cost_to_fly(d: _Draw) -> list[Seg]:
    """``how much does it cost to fly from boston to denver first class``."""
    out = _o(d.pick(("how much does it cost to fly", "how much would it cost to fly", "what does it cost to fly")))
    out += _route(d)
    if d.p(0.5):
        out += _s("class_type", d.pick(CLASS_TYPES))
    if d.p(0.3):
        out += _date(d, "depart_date")
    return out


def a_fares_bound(d: _Draw) -> list[Seg]:
    """``show me fares from boston to denver that cost less than 400 dollars``."""
    out = _o(d.pick(("show me fares", "list the fares", "what fares are there"))) + _route(d)
    return out + _o(d.pick(("that cost", "for", ""))) + _s("cost_relative", d.pick(COST_BOUNDS)) + _s(
        "fare_amount", d.fare())


def a_round_trip_price(d: _Draw) -> list[Seg]:
    """``i need the price of a round trip ticket ... leaving ... and returning ...``."""
    out = _o(d.pick(("i need the price of a", "how much is a", "what is the fare for a")))
    out += _s("round_trip", "round trip") + _o("ticket") + _route(d)
    out += _o("leaving") + _date(d, "depart_date") + _o("and returning") + _date(d, "return_date")
    return out


def g_ground_transport(d: _Draw) -> list[Seg]:
    """``what ground transportation is available in denver``."""
    out = _o(d.pick(("what ground transportation is available in", "what kind of ground transportation is there in",
                     "is there ground transportation in", "show me the ground transportation options in",
                     "i need ground transportation in", "what ground transportation options are there in",
                     "list ground transportation in")))
    return out + _s("city_name", d.city())


def g_transport_service(d: _Draw) -> list[Seg]:
    """``is there limousine service at la guardia``, ``... from the airport to downtown denver``."""
    name, _, city = d.airport()
    transport = _s("transport_type", d.pick(TRANSPORT_TYPES))
    if d.p(0.5):
        return _o("is there") + transport + _o("service at") + _airport_name(d, "airport_name", name)
    return (_o(d.pick(("is there a", "can i get a", "i need a"))) + transport + _o("from")
            + _airport_name(d, "airport_name", name) + _o("to downtown") + _s("city_name", city))


def g_transport_city(d: _Draw) -> list[Seg]:
    """``i need a rental car in denver``."""
    out = _o(d.pick(("i need a", "can i get a", "where can i get a", "show me", "is there a")))
    return out + _s("transport_type", d.pick(TRANSPORT_TYPES)) + _o(d.pick(("in", "service in"))) + _s(
        "city_name", d.city())


def g_airport_downtown(d: _Draw) -> list[Seg]:
    """``how do i get from the denver airport to downtown``."""
    city = d.city()
    out = _o(d.pick(("how do i get from the", "how can i get from the", "what is there from the")))
    out += _s("city_name", city) + _o("airport to downtown")
    if d.p(0.4):
        out += _s("city_name", city)
    return out


def g_transport_available(d: _Draw) -> list[Seg]:
    """``what taxi services are available from o'hare into chicago``."""
    name, _, city = d.airport()
    return (_o("what") + _s("transport_type", d.pick(TRANSPORT_TYPES)) + _o("services are available from")
            + _airport_name(d, "airport_name", name) + _o("into") + _s("city_name", city))


def gf_cost(d: _Draw) -> list[Seg]:
    """``how much does a taxi cost in denver``."""
    if d.p(0.6):
        return (_o(d.pick(("how much does a", "how much does the"))) + _s("transport_type", d.pick(TRANSPORT_TYPES))
                + _o("cost in") + _s("city_name", d.city()))
    name, _, city = d.airport()
    return (_o("how much is a") + _s("transport_type", d.pick(TRANSPORT_TYPES)) + _o("from")
            + _airport_name(d, "airport_name", name) + _o("to downtown") + _s("city_name", city))


def gf_rates(d: _Draw) -> list[Seg]:
    """``what are the limousine rates in boston``."""
    out = _o(d.pick(("what is the cost of", "what are the", "what do they charge for")))
    out += _s("transport_type", d.pick(TRANSPORT_TYPES))
    return out + _o(d.pick(("service in", "rates in", "in"))) + _s("city_name", d.city())


def l_which_airlines(d: _Draw) -> list[Seg]:
    """``which airlines fly from boston to denver``."""
    out = _o(d.pick(("which airlines fly", "what airlines go", "what airlines fly", "which airline flies",
                     "tell me the airlines that fly", "what airlines are there"))) + _route(d)
    if d.p(0.3):
        out += _date(d, "depart_date")
    return out


def l_airlines_stop(d: _Draw) -> list[Seg]:
    """``what airlines have nonstop flights from boston to denver``."""
    out = _o(d.pick(("what airlines have", "which airlines offer", "which airline has")))
    return out + _s("flight_stop", d.pick(FLIGHT_STOPS)) + _o("flights") + _route(d)


def l_flight_airline(d: _Draw) -> list[Seg]:
    """``which airline operates flight 1291``."""
    out = _o(d.pick(("which airline operates flight", "what airline is flight", "whose flight is")))
    out += _s("flight_number", d.flight_number())
    if d.p(0.4):
        out += _route(d)
    return out


def l_serve_city(d: _Draw) -> list[Seg]:
    """``show me the airlines that serve denver``, ``what airlines fly into la guardia``."""
    if d.p(0.6):
        return _o(d.pick(("show me the airlines that serve", "which airlines serve", "list airlines serving"))) + _s(
            "city_name", d.city())
    name = d.airport()[0]
    return _o(d.pick(("what airlines fly into", "which airlines use"))) + _airport_name(d, "toloc.airport_name", name)


def l_class_service(d: _Draw) -> list[Seg]:
    """``list the airlines with first class service from boston to denver``."""
    return _o("list the airlines with") + _s("class_type", d.pick(CLASS_TYPES)) + _o("service") + _route(d)


def l_cheapest_airline(d: _Draw) -> list[Seg]:
    """``which airline has the cheapest fare from boston to denver``."""
    out = _o(d.pick(("which airline has the", "what airline offers the")))
    return out + _s("cost_relative", d.pick(COST_SUPERLATIVES)) + _o("fare") + _route(d)


def b_fare_code(d: _Draw) -> list[Seg]:
    """``what does fare code qx mean on a ticket``."""
    code = _s("fare_basis_code", d.pick(FARE_BASIS_CODES))
    form = d.rng.random()
    if form < 0.4:
        return _o("what does fare code") + code + _o("mean on a ticket")
    if form < 0.7:
        return _o(d.pick(("what is meant by fare code", "explain fare basis code", "what is fare basis code"))) + code
    return _o("what does the fare code") + code + _o("stand for")


def b_restriction(d: _Draw) -> list[Seg]:
    """``what is meant by restriction ap 57``."""
    code = _s("restriction_code", d.pick(RESTRICTION_CODES))
    if d.p(0.5):
        return _o("what does fare restriction") + code + _o("stand for")
    return _o(d.pick(("what is meant by restriction", "explain restriction code", "what is restriction code"))) + code


def b_airline_code(d: _Draw) -> list[Seg]:
    """``what does dl stand for``."""
    code = _s("airline_code", d.airline()[1])
    if d.p(0.5):
        return _o("what does") + code + _o(d.pick(("stand for", "mean")))
    return _o(d.pick(("what airline is", "which airline is"))) + code


def b_airport_code(d: _Draw) -> list[Seg]:
    """``what does the airport code mco stand for``."""
    return _o("what does the airport code") + _s("airport_code", d.airport()[1]) + _o(d.pick(("stand for", "mean")))


def b_days_code(d: _Draw) -> list[Seg]:
    """``what does the days code sa mean``."""
    return _o("what does the days code") + _s("days_code", d.pick(DAYS_CODES)) + _o("mean")


def b_aircraft_code(d: _Draw) -> list[Seg]:
    """``what is a d9s``."""
    return _o(d.pick(("what is a", "what does", "explain aircraft code"))) + _s("aircraft_code", d.pick(AIRCRAFT))


def c_flight_aircraft(d: _Draw) -> list[Seg]:
    """``what kind of aircraft is used on flight 1291``."""
    if d.p(0.5):
        return _o("what kind of aircraft is used on flight") + _s("flight_number", d.flight_number())
    return (_o("what type of plane is") + _s("airline_name", d.airline()[0]) + _o("flight")
            + _s("flight_number", d.flight_number()))


def c_airline_aircraft(d: _Draw) -> list[Seg]:
    """``what type of aircraft does delta use from boston to denver``."""
    return (_o(d.pick(("what type of aircraft does", "what kind of planes does")))
            + _s("airline_name", d.airline()[0]) + _o("use") + _route(d))


def c_route_aircraft(d: _Draw) -> list[Seg]:
    """``which aircraft flies from boston to denver in the morning``."""
    out = _o(d.pick(("which aircraft flies", "what planes are used on flights", "what type of aircraft flies")))
    out += _route(d)
    return out + (_time(d, "depart_time") if d.p(0.5) else _date(d, "depart_date"))


def t_flight_leave(d: _Draw) -> list[Seg]:
    """``what time does flight 1291 leave boston``, ``when does delta flight 12 arrive in denver``."""
    if d.p(0.5):
        return (_o("what time does flight") + _s("flight_number", d.flight_number()) + _o("leave")
                + _s("fromloc.city_name", d.city()))
    return (_o("when does") + _s("airline_name", d.airline()[0]) + _o("flight") + _s("flight_number", d.flight_number())
            + _o("arrive in") + _s("toloc.city_name", d.city()))


def t_schedule(d: _Draw) -> list[Seg]:
    """``what are the departure times from boston to denver on monday``."""
    out = _o(d.pick(("what are the departure times", "give me the arrival times of flights",
                     "list the departure times for flights", "what is the schedule of flights"))) + _route(d)
    if d.p(0.5):
        out += _date(d, "depart_date")
    return out


def t_duration(d: _Draw) -> list[Seg]:
    """``what is the flight time from boston to denver``."""
    if d.p(0.6):
        return _o(d.pick(("what is the", "what's the", "give me the"))) + _s("flight_time", "flight time") + _route(d)
    return _o(d.pick(("how long is the flight", "how long does it take to fly"))) + _route(d)


def t_mod_leave(d: _Draw) -> list[Seg]:
    """``when does the last flight from boston to denver leave``."""
    return (_o("when does the") + _s("flight_mod", d.pick(FLIGHT_MODS)) + _o("flight") + _route(d)
            + _o(d.pick(("leave", "depart", "arrive"))))


def q_airline_count(d: _Draw) -> list[Seg]:
    """``how many flights does delta have from boston to denver``."""
    return _o("how many flights does") + _s("airline_name", d.airline()[0]) + _o("have") + _route(d)


def q_count(d: _Draw) -> list[Seg]:
    """``how many first class flights leave boston on monday``."""
    if d.p(0.5):
        return (_o("how many") + _s("class_type", d.pick(CLASS_TYPES)) + _o("flights leave")
                + _s("fromloc.city_name", d.city()) + _date(d, "depart_date"))
    return _o("how many flights go") + _route(d) + _date(d, "depart_date")


def q_stop_count(d: _Draw) -> list[Seg]:
    """``how many nonstop flights are there from boston to denver``."""
    return _o("how many") + _s("flight_stop", d.pick(FLIGHT_STOPS)) + _o("flights are there") + _route(d)


def d_airport_downtown(d: _Draw) -> list[Seg]:
    """``how far is la guardia from downtown new york``."""
    name, _, city = d.airport()
    return _o("how far is") + _airport_name(d, "airport_name", name) + _o("from downtown") + _s("city_name", city)


def d_city_airport(d: _Draw) -> list[Seg]:
    """``what is the distance from the denver airport to downtown denver``."""
    city = d.city()
    return (_o("what is the distance from the") + _s("city_name", city) + _o("airport to downtown")
            + _s("city_name", city))


def d_route(d: _Draw) -> list[Seg]:
    """``how many miles is it from boston to denver``."""
    return _o(d.pick(("how many miles is it", "how far is it", "what is the flying distance"))) + _route(d)


def ci_airport_city(d: _Draw) -> list[Seg]:
    """``what city is mco in``, ``where is la guardia``."""
    name, code, _ = d.airport()
    if d.p(0.5):
        return _o("what city is") + _s("airport_code", code) + _o("in")
    if d.p(0.5):
        return _o("which city is") + _s("airport_name", name) + _o("in")
    return _o(d.pick(("where is", "what city serves"))) + _s("airport_name", name)


def ci_airline_cities(d: _Draw) -> list[Seg]:
    """``what cities does delta fly to``."""
    return _o(d.pick(("what cities does", "which cities does"))) + _s("airline_name", d.airline()[0]) + _o(
        d.pick(("fly to", "serve")))


def ca_passengers(d: _Draw) -> list[Seg]:
    """``how many passengers does a 747 hold``."""
    return (_o(d.pick(("how many passengers does a", "how many people can fly on a", "how many seats are in a")))
            + _s("aircraft_code", d.pick(AIRCRAFT)) + _o(d.pick(("hold", "", "have"))))


def ca_capacity(d: _Draw) -> list[Seg]:
    """``what is the seating capacity of the 757``."""
    out = _o(d.pick(("what is the seating capacity of the", "what is the capacity of a")))
    if d.p(0.3):
        out += _s("airline_name", d.airline()[0])
    return out + _s("aircraft_code", d.pick(AIRCRAFT))


def m_flight_meals(d: _Draw) -> list[Seg]:
    """``what meals are served on flight 1291``."""
    if d.p(0.5):
        return _o("what") + _s("meal", "meals") + _o("are served on flight") + _s("flight_number", d.flight_number())
    return (_o("what") + _s("meal", "meals") + _o("does") + _s("airline_name", d.airline()[0]) + _o("flight")
            + _s("flight_number", d.flight_number()) + _o("serve"))


def m_meal_served(d: _Draw) -> list[Seg]:
    """``is breakfast served on the delta flight from boston to denver``."""
    if d.p(0.5):
        return (_o("is") + _s("meal_description", d.pick(MEAL_DESCRIPTIONS)) + _o("served on the")
                + _s("airline_name", d.airline()[0]) + _o("flight") + _route(d))
    return (_o("what kind of") + _s("meal", "meal") + _o("is served on the") + _s("flight_mod", d.pick(FLIGHT_MODS))
            + _o("flight") + _route(d))


def n_flight_number(d: _Draw) -> list[Seg]:
    """``what is the flight number of the delta flight from boston to denver at 5 pm``."""
    out = _o(d.pick(("what is the flight number of the", "tell me the flight number of the")))
    out += _s("airline_name", d.airline()[0]) + _o("flight") + _route(d)
    return out + _time(d, "depart_time")


def n_flight_numbers(d: _Draw) -> list[Seg]:
    """``give me the flight numbers for flights from boston to denver on monday``."""
    return _o(d.pick(("give me the flight numbers for flights", "list flight numbers"))) + _route(d) + _date(
        d, "depart_date")


def p_city_airports(d: _Draw) -> list[Seg]:
    """``what airports are in new york``, ``list the airports in denver colorado``."""
    city = d.city()
    if d.p(0.6) or not STATE_OF[city]:
        return _o(d.pick(("what airports are in", "which airports are there in", "list the airports in"))) + _s(
            "city_name", city)
    return _o("list the airports in") + _s("city_name", city) + _s("state_name", STATE_OF[city])


def p_closest(d: _Draw) -> list[Seg]:
    """``which airport in chicago is closest to downtown``."""
    return _o("which airport in") + _s("city_name", d.city()) + _o(d.pick(("is closest to downtown", "is the biggest")))


def mu_flights_fares(d: _Draw) -> list[Seg]:
    """``show me the flights and fares from boston to denver on monday`` (flight#airfare)."""
    out = _o(d.pick(("show me the flights and fares", "i want flights and prices", "list flights and fares")))
    out += _route(d)
    if d.p(0.6):
        out += _date(d, "depart_date")
    return out


def mu_ground_and_fare(d: _Draw) -> list[Seg]:
    """``what ground transportation is available in denver and how much does it cost``."""
    return _o("what ground transportation is available in") + _s("city_name", d.city()) + _o(
        "and how much does it cost")


def mu_airline_and_number(d: _Draw) -> list[Seg]:
    """``what airline and flight number leaves boston at 5 pm for denver``."""
    frm, to = _cities(d, 2)
    return (_o("what airline and flight number leaves") + _s("fromloc.city_name", frm) + _time(d, "depart_time")
            + _o("for") + _s("toloc.city_name", to))


def quirk_booking_class(d: _Draw) -> list[Seg]:
    """Dev/test only: ``flights from boston to denver in booking class q`` (slot booking_class)."""
    out = _o(d.pick(("flights", "i need a flight", "show me flights"))) + _route(d)
    if d.p(0.5):
        out += _date(d, "depart_date")
    return out + _o("in booking class") + _s("booking_class", d.pick(BOOKING_CLASSES))


def quirk_day_name(d: _Draw) -> list[Seg]:
    """Dev/test only: ``what day of the week do flights from boston to denver fly`` (atis_day_name)."""
    if d.p(0.5):
        return _o("what day of the week do flights") + _route(d) + _o(d.pick(("fly", "leave")))
    return _o("on what days does flight") + _s("flight_number", d.flight_number()) + _o("fly")


Frame = tuple[str, float, Callable[[_Draw], list[Seg]]]

FRAMES: tuple[Frame, ...] = (
    ("atis_flight", 28.0, f_compositional),
    ("atis_flight", 1.6, f_bare_pair),
    ("atis_flight", 2.0, f_need_arrive),
    ("atis_flight", 1.6, f_leave_and_arrive),
    ("atis_flight", 2.6, f_fly_from_to),
    ("atis_flight", 1.2, f_go_to_from),
    ("atis_flight", 2.0, f_round_trip),
    ("atis_flight", 0.8, f_return_noun),
    ("atis_flight", 1.0, f_time_noun),
    ("atis_flight", 0.6, f_time_premod),
    ("atis_flight", 1.2, f_flight_number),
    ("atis_flight", 0.6, f_airline_code_flights),
    ("atis_flight", 1.6, f_stopover),
    ("atis_flight", 0.6, f_via_first),
    ("atis_flight", 0.8, f_connecting),
    ("atis_flight", 1.0, f_airports),
    ("atis_flight", 0.5, f_airport_codes),
    ("atis_flight", 0.6, f_states),
    ("atis_flight", 2.4, f_what_flights_verb),
    ("atis_flight", 0.9, f_does_airline),
    ("atis_flight", 0.6, f_meal_flight),
    ("atis_flight", 0.5, f_aircraft_flight),
    ("atis_flight", 0.5, f_days),
    ("atis_flight", 0.6, f_or),
    ("atis_flight", 0.7, f_cost_bound),
    ("atis_flight", 1.4, f_flight_mod_question),
    ("atis_flight", 0.6, f_earliest_arrival),
    ("atis_flight", 0.8, f_day_period),
    ("atis_flight", 0.9, f_followup),
    ("atis_flight", 0.5, f_how_get),
    ("atis_flight", 1.2, f_arrive_clause),
    ("atis_flight", 0.5, f_airport_departure),
    ("atis_flight", 0.7, f_nonstop_to),
    ("atis_flight", 0.8, f_trip_story),
    ("atis_flight", 0.7, f_class_request),
    ("atis_flight", 0.6, f_fly_airline),
    ("atis_flight", 0.9, f_leaving_need_by),
    ("atis_flight", 0.5, f_period_question),
    ("atis_flight", 0.7, f_leave_after_arrive_before),
    ("atis_flight", 0.5, f_between),
    ("atis_flight", 0.5, f_coordinated),
    ("atis_flight", 0.5, f_two_legs),
    ("atis_airfare", 1.8, a_ticket_price),
    ("atis_airfare", 1.8, a_cheapest_fare),
    ("atis_airfare", 1.5, a_list_fares),
    ("atis_airfare", 0.7, a_airline_ticket_cost),
    ("atis_airfare", 0.8, a_flight_fare),
    ("atis_airfare", 0.7, a_airline_fares),
    ("atis_airfare", 0.7, a_cost_to_fly),
    ("atis_airfare", 0.5, a_fares_bound),
    ("atis_airfare", 0.5, a_round_trip_price),
    ("atis_ground_service", 2.4, g_ground_transport),
    ("atis_ground_service", 1.0, g_transport_service),
    ("atis_ground_service", 0.8, g_transport_city),
    ("atis_ground_service", 0.5, g_airport_downtown),
    ("atis_ground_service", 0.4, g_transport_available),
    ("atis_ground_fare", 0.35, gf_cost),
    ("atis_ground_fare", 0.25, gf_rates),
    ("atis_airline", 1.2, l_which_airlines),
    ("atis_airline", 0.6, l_airlines_stop),
    ("atis_airline", 0.4, l_flight_airline),
    ("atis_airline", 0.5, l_serve_city),
    ("atis_airline", 0.3, l_class_service),
    ("atis_airline", 0.3, l_cheapest_airline),
    ("atis_abbreviation", 0.9, b_fare_code),
    ("atis_abbreviation", 0.5, b_restriction),
    ("atis_abbreviation", 0.5, b_airline_code),
    ("atis_abbreviation", 0.3, b_airport_code),
    ("atis_abbreviation", 0.15, b_days_code),
    ("atis_abbreviation", 0.2, b_aircraft_code),
    ("atis_aircraft", 0.6, c_flight_aircraft),
    ("atis_aircraft", 0.5, c_airline_aircraft),
    ("atis_aircraft", 0.4, c_route_aircraft),
    ("atis_flight_time", 0.5, t_flight_leave),
    ("atis_flight_time", 0.5, t_schedule),
    ("atis_flight_time", 0.3, t_mod_leave),
    ("atis_flight_time", 0.3, t_duration),
    ("atis_quantity", 0.5, q_airline_count),
    ("atis_quantity", 0.4, q_count),
    ("atis_quantity", 0.3, q_stop_count),
    ("atis_distance", 0.35, d_airport_downtown),
    ("atis_distance", 0.25, d_city_airport),
    ("atis_distance", 0.2, d_route),
    ("atis_city", 0.4, ci_airport_city),
    ("atis_city", 0.3, ci_airline_cities),
    ("atis_capacity", 0.35, ca_passengers),
    ("atis_capacity", 0.35, ca_capacity),
    ("atis_meal", 0.35, m_flight_meals),
    ("atis_meal", 0.25, m_meal_served),
    ("atis_flight_no", 0.4, n_flight_number),
    ("atis_flight_no", 0.3, n_flight_numbers),
    ("atis_airport", 0.4, p_city_airports),
    ("atis_airport", 0.3, p_closest),
    ("atis_flight#atis_airfare", 0.9, mu_flights_fares),
    ("atis_ground_service#atis_ground_fare", 0.3, mu_ground_and_fare),
    ("atis_airline#atis_flight_no", 0.3, mu_airline_and_number),
)
"""(intent, relative weight, frame) for every split."""

QUIRK_FRAMES: tuple[Frame, ...] = (
    ("atis_flight", 1.0, quirk_booking_class),
    ("atis_day_name", 1.0, quirk_day_name),
)
"""Frames used only in dev and test (:data:`QUIRK_PER_MILLE` per 1000 utterances each)."""

# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def _needs_an(word: str) -> bool:
    if word == "one":
        return False
    if word[0] in "aeio" or word[0] == "8" or (word[:2] in ("11", "18") and len(word) in (2, 4)):
        return True
    return word[0] in "fhlmnrsx" and any(ch.isdigit() for ch in word)


def _flatten(segs: list[Seg]) -> tuple[list[str], list[str]]:
    """Words and IOB2 tags of ``segs``; an untagged ``a`` before a vowel sound becomes ``an``."""
    tokens: list[str] = []
    tags: list[str] = []
    for text, slot in segs:
        for i, word in enumerate(text.split()):
            tokens.append(word)
            tags.append("O" if slot is None else ("B-" if i == 0 else "I-") + slot)
    for i in range(len(tokens) - 1):
        if tokens[i] == "a" and tags[i] == "O" and _needs_an(tokens[i + 1]):
            tokens[i] = "an"
    return tokens, tags


def _utterance(d: _Draw, frames: Sequence[Frame]) -> Triple:
    intent, frame = d.weighted(tuple(((intent, frame), weight) for intent, weight, frame in frames))
    segs = frame(d)
    if d.p(0.05):
        prefix = d.pick(PREFIXES)
        if segs[0][0].split()[0] != prefix:
            segs = _o(prefix) + segs
    if d.p(0.04):
        segs = segs + _o(d.pick(SUFFIXES))
    if d.p(0.04) and len(segs) > 2:
        at = d.rng.randint(1, len(segs) - 1)
        segs = segs[:at] + _o(d.pick(FILLERS)) + segs[at:]
    tokens, tags = _flatten(segs)
    return tokens, tags, intent


def _split(rng: random.Random, size: int, eval_split: bool, seen: set[tuple[str, ...]]) -> list[Triple]:
    """``size`` utterances; in dev/test with the quirks and none whose text is in ``seen``."""
    d = _Draw(rng, unseen_cities=eval_split)
    quirk_at: dict[int, Frame] = {}
    if eval_split:
        for frame in QUIRK_FRAMES:
            for _ in range(size * QUIRK_PER_MILLE // 1000):
                position = rng.randrange(size)
                while position in quirk_at:
                    position = rng.randrange(size)
                quirk_at[position] = frame
    out: list[Triple] = []
    for position in range(size):
        frames = (quirk_at[position],) if position in quirk_at else FRAMES
        for _attempt in range(100):
            tokens, tags, intent = _utterance(d, frames)
            if len(tokens) <= MAX_TOKENS and not (eval_split and tuple(tokens) in seen):
                break
        out.append((tokens, tags, intent))
        if eval_split:
            seen.add(tuple(tokens))
    return out


def generate(seed: int = DEFAULT_SEED, sizes: dict[str, int] | None = None) -> dict[str, list[Triple]]:
    """The corpus for ``seed``: split name -> list of (tokens, IOB2 tags, intent).

    Args:
        seed: any int; the same seed always gives the same corpus.
        sizes: utterances per split, overriding :data:`DEFAULT_SIZES` (train 4000, dev 500,
            test 800) for the splits it names.

    Dev and test never repeat a train utterance (nor test a dev one) and hold the quirks
    described in the module docstring; train never holds them.
    """
    wanted = dict(DEFAULT_SIZES)
    for split, size in (sizes or {}).items():
        if split not in wanted:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size of {split!r} must be a non-negative int, got {size!r}")
        wanted[split] = size
    corpus: dict[str, list[Triple]] = {}
    seen: set[tuple[str, ...]] = set()
    for split in SPLITS:
        rng = random.Random(f"slotfill-airline/{seed}/{split}")
        corpus[split] = _split(rng, wanted[split], split != "train", seen)
        if split == "train":
            seen.update(tuple(tokens) for tokens, _, _ in corpus[split])
    return corpus


def write_corpus(root: Path, seed: int = DEFAULT_SEED, sizes: dict[str, int] | None = None) -> None:
    """Write ``root/{train,dev,test}/{seq.in,seq.out,label}`` (JointBERT layout, UTF-8, ``\\n``)."""
    root = Path(root)
    for split, rows in generate(seed, sizes).items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        columns = {
            "seq.in": [" ".join(tokens) for tokens, _, _ in rows],
            "seq.out": [" ".join(tags) for _, tags, _ in rows],
            "label": [intent for _, _, intent in rows],
        }
        for name in FILES:
            (folder / name).write_bytes("".join(line + "\n" for line in columns[name]).encode("utf-8"))


def _stale_files(out: Path, seed: int) -> list[str]:
    """The files under ``out`` that differ from a fresh generation (missing ones included)."""
    stale: list[str] = []
    with tempfile.TemporaryDirectory(prefix="slotfill-airline-") as tmp:
        write_corpus(Path(tmp), seed)
        for split in SPLITS:
            for name in FILES:
                mine = out / split / name
                fresh = Path(tmp) / split / name
                if not mine.is_file() or mine.read_bytes() != fresh.read_bytes():
                    stale.append(str(mine))
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slotfill.data.synthetic",
        description="Write (or, with --check, verify) the bundled airline-travel slot-filling corpus.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and exit 1 if any file under --out differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = _stale_files(args.out, args.seed)
        if stale:
            print(f"error: {len(stale)} file(s) differ from the output of seed {args.seed}: "
                  f"{', '.join(stale)} -- rebuild with: python -m slotfill.data.synthetic "
                  f"--out {args.out} --seed {args.seed}", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date (seed {args.seed})")
        return 0
    write_corpus(args.out, args.seed)
    print(f"wrote {args.out} (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
