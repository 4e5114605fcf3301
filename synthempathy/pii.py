"""Personal data in free text: find it, replace it with a placeholder per type.

Each recognizer finds candidates with a pattern and keeps only those a well-kept library
validates, so numbers that merely look alike (dates, prices, scores, versions) stay:

- phone: Google's libphonenumber (``phonenumbers``): its matcher finds numbers in national
  formats of ``phone_regions`` and in international format (``+``) for every country. A match
  counts if libphonenumber calls it valid, or possible with >= 10 digits (fictional 555
  numbers, unassigned mobile ranges). Toll-free, shared-cost and UK 03 numbers stay: they reach
  organisations such as helplines, not people, and a crisis response should contain them.
- ssn, credit_card, iban: checksums and registries of ``python-stdnum`` (US SSN area/group
  rules, Luhn, IBAN country length and mod-97).
- ip_address: the standard library's ``ipaddress`` (IPv4 and IPv6).
- email (also spelled out: "name at gmail dot com"), url, handle (@name, u/name, "my insta is
  x_y"), address (house number + capitalised street name + street type, PO boxes, UK
  postcodes): patterns; no library recognizes these in running text without an NER model.

Overlapping finds resolve leftmost-longest, so "jo@mail.com" is one email, not a handle and a
URL. Everything is a pure function of the text and the config: the same text always scrubs to
the same bytes.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher, PhoneNumberType
from stdnum import iban, luhn
from stdnum.us import ssn

# Type name (params: filter.pii_types) -> placeholder, in priority order for equal spans.
PLACEHOLDERS = {
    "email": "[EMAIL]",
    "url": "[URL]",
    "ssn": "[SSN]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    "ip_address": "[IP_ADDRESS]",
    "phone": "[PHONE]",
    "handle": "[HANDLE]",
    "address": "[ADDRESS]",
}
PII_TYPES = tuple(PLACEHOLDERS)
# Numbers that reach an organisation, not a person (helplines): never scrubbed.
SERVICE_NUMBER_TYPES = frozenset({PhoneNumberType.TOLL_FREE, PhoneNumberType.SHARED_COST, PhoneNumberType.UAN})
MIN_UNVALIDATED_PHONE_DIGITS = 10  # a merely "possible" number needs a full national number
# Top-level domains a bare domain ("mysite.net") may end with. Short on purpose: country codes
# that are English words or chat typos ("sad.be", "day.my", "ok.so") would scrub real sentences.
BARE_DOMAIN_TLDS = "com|org|net|edu|gov|io|co|uk|us|ca|au|nz|ie|de|fr|ly|info|biz|app|dev|xyz"
# Mail domains that make "jane at gmail.com" an email although only the "at" is spelled out.
MAIL_PROVIDERS = frozenset(
    {"gmail", "googlemail", "yahoo", "hotmail", "outlook", "live", "msn", "icloud", "me", "aol", "proton", "protonmail", "gmx", "mail", "yandex", "zoho"}
)


@dataclass(frozen=True)
class PiiConfig:
    """Which types to scrub (names in PII_TYPES), and the countries (ISO 3166 codes) whose
    national phone formats, written without ``+``, count. Validated in params.py."""

    types: tuple[str, ...]
    phone_regions: tuple[str, ...]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    type: str


Recognizer = Callable[[str, PiiConfig], Iterator[tuple[int, int]]]


# ---------------------------------------------------------------- recognizers

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# Words that are never the name or mail domain of a spelled-out address: "worked at a dot com
# startup", "I was at the dot com office".
FUNCTION_WORDS = frozenset(
    "a an the this that these those my your his her its our their me you him us them i we he she it they was is are were be been am".split()
)
_AT = r"\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+|\s*@\s*"
_DOT = r"\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+|\."
SPELLED_EMAIL = re.compile(
    rf"(?<![\w.+-])(?P<name>[\w+-]+(?:(?:{_DOT})[\w+-]+)*)(?P<at>{_AT})(?P<domain>[\w-]+)(?P<rest>(?:(?:{_DOT})[\w-]+)*(?:{_DOT})"
    rf"(?:com|org|net|edu|gov|mil|io|co|uk|us|ca|au|de|fr|nz|ie|info|biz))\b",
    re.IGNORECASE,
)


def emails(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in EMAIL.finditer(text):
        yield match.span()
    for match in SPELLED_EMAIL.finditer(text):
        if match["domain"].lower() in MAIL_PROVIDERS:
            yield match.span()  # "name at gmail dot com", "jane at gmail.com"
        elif match["at"].strip().lower() == "at" and "dot" not in match["rest"].lower():
            continue  # "I work at google.com": a URL, not an email
        elif not {match["name"].lower(), match["domain"].lower()} & FUNCTION_WORDS:
            yield match.span()  # not "worked at a dot com startup"


URL = re.compile(
    r"\b(?i:https?://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]]"
    rf"|\b[\w-]+(?:\.[\w-]+)*\.(?:{BARE_DOMAIN_TLDS})\b(?!\.\w|@)(?:/[^\s<>\"']*[^\s<>\"'.,;:!?)\]])?",
)


def urls(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in URL.finditer(text):
        yield match.span()


SSN = re.compile(r"(?<![\w-])(\d{3})([- .])(\d{2})\2(\d{4})(?![\w-]|\.\d)")
SSN_WITH_CONTEXT = re.compile(r"\b(?:SSN|social security(?: number| no\.?| #)?)\s*(?:is|was|:|#)?\s*(?P<ssn>\d{9})\b", re.IGNORECASE)


def ssns(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in SSN.finditer(text):
        if ssn.is_valid(match[1] + match[3] + match[4]):
            yield match.span()
    for match in SSN_WITH_CONTEXT.finditer(text):
        if ssn.is_valid(match["ssn"]):
            yield match.span("ssn")


# Issuer numbers start with 2-6 (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6);
# a Luhn-valid run starting 0 is more likely "0044 7911 123456", a phone number.
CARD = re.compile(r"(?<![\d-])[2-6](?:[ -]?\d){12,18}(?![\d-])")


def credit_cards(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in CARD.finditer(text):
        if luhn.is_valid(re.sub(r"\D", "", match[0])):
            yield match.span()


IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?\b")


def ibans(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in IBAN.finditer(text):
        if iban.is_valid(match[0]):
            yield match.span()


IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?=[:0-9A-Fa-f]*[0-9A-Fa-f])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def ip_addresses(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for pattern in (IPV4, IPV6):
        for match in pattern.finditer(text):
            try:
                ipaddress.ip_address(match[0])
            except ValueError:
                continue  # "10:30:45", "999.1.1.1"
            yield match.span()


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _service_number(match: phonenumbers.PhoneNumberMatch) -> bool:
    """A valid toll-free/shared-cost/UAN number, in a reading that has the digits as written:
    "5551234567" is a UK corporate number only when written "0555 123 4567"."""
    number = match.number
    if phonenumbers.number_type(number) not in SERVICE_NUMBER_TYPES or not phonenumbers.is_valid_number(number):
        return False
    written = _digits(match.raw_string)
    return written in {
        _digits(phonenumbers.format_number(number, fmt)) for fmt in (phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.E164)
    }


def phones(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    matches = [m for region in config.phone_regions for m in PhoneNumberMatcher(text, region, leniency=Leniency.POSSIBLE)]
    # A helpline in one region's reading ("(888) 555-0100" is US toll-free) stays in every other.
    service = [(m.start, m.end) for m in matches if _service_number(m)]
    for match in matches:
        if any(start < match.end and match.start < end for start, end in service):
            continue
        if text[match.start - 1 : match.start].isalnum() or text[match.end : match.end + 1].isalnum():
            continue  # digits inside a code such as the parcel number "1Z999AA10123456784"
        digits = sum(c.isdigit() for c in match.raw_string)
        if digits >= MIN_UNVALIDATED_PHONE_DIGITS or phonenumbers.is_valid_number(match.number):
            yield match.start, match.end


HANDLE = re.compile(r"(?<![\w@.+-])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?(?![\w@])|(?<![\w/])/?u/[A-Za-z0-9_-]{3,20}\b")
# "my insta is jane_doe92": a name after a platform needs a digit, _ or . (not "is private").
PLATFORMS = r"insta(?:gram)?|ig|twitter|tiktok|snap(?:chat)?|discord|telegram|threads|twitch|reddit|kik"
HANDLE_WITH_CONTEXT = re.compile(
    rf"\b(?:{PLATFORMS})"
    r"(?:\s+(?:handle|username|user name|name|account|id))?\s*(?:is|:|=|-)\s*(?P<handle>(?=[A-Za-z0-9_.]*[0-9_.][A-Za-z0-9_.]*\b)[A-Za-z0-9_][A-Za-z0-9_.]{1,29})\b",
    re.IGNORECASE,
)


def handles(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in HANDLE.finditer(text):
        yield match.span()
    for match in HANDLE_WITH_CONTEXT.finditer(text):
        yield match.span("handle")


_STREET_TYPE = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|circle|"
    r"parkway|pkwy|highway|hwy|loop|close|crescent|square|sq|grove|gardens|row|mews)"
)
ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,?\s+(?:(?:[A-Z][a-z]+(?:'s)?|\d{1,3}(?:st|nd|rd|th)|[NSEW])\.?\s+){1,3}" + _STREET_TYPE + r"\b\.?"
    r"(?:,?\s+(?i:apt|apartment|unit|suite|flat)\.?\s*#?\w{1,5}\b)?"
    r"|\b(?i:p\.?\s?o\.?\s+box)\s+\d{1,6}\b"
    r"|\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{2}\b"  # UK postcode (its letters exclude C, I, K, M, O, V)
)


def addresses(text: str, config: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in ADDRESS.finditer(text):
        yield match.span()


RECOGNIZERS: dict[str, Recognizer] = {
    "email": emails,
    "url": urls,
    "ssn": ssns,
    "credit_card": credit_cards,
    "iban": ibans,
    "ip_address": ip_addresses,
    "phone": phones,
    "handle": handles,
    "address": addresses,
}
_DIGIT = re.compile(r"\d")
# What a text must contain to hold a type at all: a cheap search that lets most texts skip the
# costlier recognizers (a speed-up only; the recognizers decide).
HINTS: dict[str, re.Pattern] = {
    "email": re.compile(r"@|\bdot\b|[\[({<]\s*at\s*[\])}>]|\bat\s+(?:" + "|".join(sorted(MAIL_PROVIDERS)) + r")\.", re.IGNORECASE),
    "ssn": _DIGIT,
    "credit_card": _DIGIT,
    "iban": _DIGIT,
    "ip_address": _DIGIT,
    # 7 digits close together, country code included: only a few small countries have shorter numbers
    "phone": re.compile(r"\d(?:\D{0,3}\d){6}"),
    "handle": re.compile(rf"@|u/|\b(?:{PLATFORMS})\b", re.IGNORECASE),
    "address": _DIGIT,
}


# ---------------------------------------------------------------- find and scrub


def resolve_overlaps(spans: Sequence[Span]) -> list[Span]:
    """Leftmost-longest non-overlapping spans; equal spans go to the earlier type in PII_TYPES."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end, PII_TYPES.index(s.type))):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


def find_pii(text: str, config: PiiConfig) -> list[Span]:
    """Non-overlapping PII spans in ``text``, in order."""
    hinted: dict[re.Pattern, bool] = {}  # a hint shared by several types is searched once
    spans = []
    for kind in config.types:
        hint = HINTS.get(kind)
        if hint is not None:
            if hint not in hinted:
                hinted[hint] = hint.search(text) is not None
            if not hinted[hint]:
                continue
        spans += [Span(start, end, kind) for start, end in RECOGNIZERS[kind](text, config)]
    return resolve_overlaps(spans)


def scrub(text: str, config: PiiConfig) -> tuple[str, Counter]:
    """``text`` with every PII span replaced by its placeholder, and the count per type."""
    spans = find_pii(text, config)
    if not spans:
        return text, Counter()
    parts, pos = [], 0
    for span in spans:
        parts += [text[pos : span.start], PLACEHOLDERS[span.type]]
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts), Counter(span.type for span in spans)
