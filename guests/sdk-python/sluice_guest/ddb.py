"""DynamoDB change data to plain JSON, exactly as sluice's built-in decoder does it.

A standard-library-only port of the Rust crate ``guests/ddb-core`` (used by the
``builtin:ddb-json`` guest), for transform guests written in Python:

* :func:`decode_stream_change` reads one "Kinesis Data Streams for DynamoDB"
  record, :func:`decode_export_line` one line of a DynamoDB export (full or
  incremental), into a :class:`Change`: the table, the canonical key, what
  happened and when, and the images as plain JSON text; the same rows
  ``builtin:ddb-json`` makes (see ``guests/ddb-json/src/rows.rs``).
* Numbers keep DynamoDB's digits, sets become arrays, binaries stay base64,
  keys have one spelling per item (compact JSON, attributes sorted by name,
  numbers in DynamoDB's own spelling).
* What DynamoDB never writes is a :class:`DecodeError`, not a guess: a member
  name twice in one object, a value twice in one set, an empty set, an empty
  string or binary as a key value, an unknown attribute type...

For a transform that reads or changes items, :func:`plain` turns one DynamoDB
attribute value into Python values (numbers as :class:`Number`, a
``decimal.Decimal`` that remembers its spelling; never ``float``),
:func:`loads` reads a plain-JSON image the same way, and :func:`to_json`
writes such values back as compact JSON, spelling unchanged numbers exactly as
the decoder did. :func:`check_u64` and :func:`check_s64` keep integers that
would make the component trap away from the WIT boundary.

How it works: ``json.loads`` (C speed) reads the record, and a walk over the
result checks it and writes the output. Anything that walk is not sure of
(anything the decoder would refuse, or the rare escapes that a parsed value no
longer shows) is handed to a line-by-line port of the Rust scanner, which also
writes the error message, with the same wording, path and byte offset.
One difference remains (see :func:`decode_stream_change`): a string the record
spells with escapes (``"caf\\u00e9"``) comes out of the fast path in the one
canonical spelling (``"café"``), which is the same JSON value.
"""

from __future__ import annotations

import base64
import json
import json.decoder
import json.scanner
import re
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring as _quote

try:  # only for error messages about unusual characters
    import unicodedata
except ImportError:  # pragma: no cover
    unicodedata = None

__all__ = [
    "Change",
    "DecodeError",
    "Number",
    "MAX_DEPTH",
    "U64_MAX",
    "S64_MIN",
    "S64_MAX",
    "decode_stream_change",
    "decode_export_line",
    "plain",
    "plain_item",
    "loads",
    "to_json",
    "canonical_key",
    "canonical_number",
    "check_u64",
    "check_s64",
]

#: Nesting deeper than this is refused (as ddb-core does: DynamoDB allows 32
#: levels, this leaves room for the envelope).
MAX_DEPTH = 64
U64_MAX = (1 << 64) - 1
S64_MIN = -(1 << 63)
S64_MAX = (1 << 63) - 1

_MAX_DIGITS = 38
_MAX_EXP = 125
_MIN_EXP = -130
_EXP_CAP = 1 << 40


# ---------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------


@dataclass
class Change:
    """One change to one item, decoded: the fields of a WIT ``row``."""

    #: The DynamoDB table (``tableName``, or the configured table for exports).
    table: str
    #: The canonical key: compact JSON object of the key attributes, sorted by name.
    key: str
    #: ``"upsert"``, ``"delete"`` or ``"ttl-delete"``.
    operation: str
    #: The order's microseconds (``ApproximateCreationDateTime`` in µs, the
    #: export time, or ``WriteTimestampMicros``); always fits a u64.
    micros: int
    #: The order's tie-breaker: the record's ``sequence``.
    tiebreak: str
    #: ``INSERT``, ``MODIFY``, ``REMOVE`` or ``BULK_LOAD``.
    event_name: str
    #: The record's ``eventID``; empty for export lines.
    event_id: str
    #: The item after the change, as plain JSON text; ``None`` for deletes.
    new_image: str | None
    #: The item before the change, as plain JSON text, when the record has it.
    old_image: str | None

    def new_item(self) -> dict | None:
        """``new_image`` as Python values (see :func:`loads`)."""
        return None if self.new_image is None else loads(self.new_image)

    def old_item(self) -> dict | None:
        """``old_image`` as Python values (see :func:`loads`)."""
        return None if self.old_image is None else loads(self.old_image)


class DecodeError(Exception):
    """Why a record cannot be decoded: a reason, where in the record, and the
    byte offset, worded as ddb-core words it, e.g.
    ``dynamodb.NewImage.price: invalid number "12,50": unexpected character (at byte 259)``.
    """

    def __init__(self, reason: str, offset: int | None = None):
        super().__init__(reason)
        self.reason = reason
        #: Byte offset in the payload; ``None`` for a problem with the record
        #: as a whole (a missing field).
        self.offset = offset
        self._segments: list[str] = []  # innermost first

    def within(self, segment: str) -> "DecodeError":
        """Adds the enclosing field's name, while the error travels outwards."""
        self._segments.append(segment)
        return self

    @property
    def path(self) -> str:
        """Where the error is, e.g. ``dynamodb.NewImage.items[2].price``."""
        out = ""
        for segment in reversed(self._segments):
            if out and not segment.startswith("["):
                out += "."
            out += segment
        return out

    def __str__(self) -> str:
        text = self.path + ": " if self._segments else ""
        if self.offset is None:
            return text + self.reason
        return f"{text}{self.reason} (at byte {self.offset})"


class _Slow(Exception):
    """The fast path is not sure; the exact scanner decides."""


class _Invalid(Exception):
    """A number or base64 text is not valid; the argument says why."""


# ---------------------------------------------------------------------------
# Integers at the WIT boundary
# ---------------------------------------------------------------------------


def _describe_int(n: int) -> str:
    # str() of a huge int may exceed Python's digit limit; keep messages short.
    return str(n) if n.bit_length() <= 128 else f"a {n.bit_length()}-bit integer"


def _check_int(n, lo: int, hi: int, wit: str, what: str) -> int:
    if type(n) is bool or not isinstance(n, int):
        raise TypeError(f"{what} must be an int (WIT {wit}), not {type(n).__name__}")
    if not lo <= n <= hi:
        raise ValueError(f"{what} {_describe_int(n)} is out of range for WIT {wit} ({lo} to {hi})")
    return int(n)


def check_u64(n: int, what: str = "value") -> int:
    """Returns ``n`` if it fits a WIT ``u64`` (e.g. ``order.micros``); raises
    ``ValueError`` (``TypeError`` for a non-int) instead of letting it reach the
    component boundary, where componentize-py would trap."""
    return _check_int(n, 0, U64_MAX, "u64", what)


def check_s64(n: int, what: str = "value") -> int:
    """Returns ``n`` if it fits a WIT ``s64`` (e.g. an extra column's
    ``integer``); raises ``ValueError`` (``TypeError`` for a non-int)."""
    return _check_int(n, S64_MIN, S64_MAX, "s64", what)


# ---------------------------------------------------------------------------
# Rust's {:?} of a string, for error messages
# ---------------------------------------------------------------------------

_DEBUG_SHORT = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"'}
_NON_PRINTABLE = frozenset(("Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"))


def _debug(text: str) -> str:
    """``text`` as Rust's ``{:?}`` writes it: quoted, with ``"``, ``\\`` and
    control characters escaped (non-printable characters approximately as
    Rust's tables decide, from Python's Unicode data)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    out = []
    for c in text:
        short = _DEBUG_SHORT.get(c)
        if short is not None:
            out.append(short)
        elif c != " " and (
            unicodedata.category(c) in _NON_PRINTABLE if unicodedata is not None else not c.isprintable()
        ):
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------------------
# Numbers (number.rs)
# ---------------------------------------------------------------------------

_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[0-9]*")


def _number_problem(text: str) -> str:
    """Why ``text`` is not a number, in the order ddb-core checks."""
    i = 1 if text[:1] in ("-", "+") and text else 0
    j = _DIGITS.match(text, i).end()
    has_int = j > i
    k, has_frac = j, False
    if text[j : j + 1] == ".":
        k = _DIGITS.match(text, j + 1).end()
        has_frac = k > j + 1
    if not has_int and not has_frac:
        return "no digits"
    if text[k : k + 1] in ("e", "E") and text[k : k + 1]:
        k += 1
        if text[k : k + 1] in ("+", "-") and text[k : k + 1]:
            k += 1
        end = _DIGITS.match(text, k).end()
        if end == k:
            return "no digits in exponent"
        k = end
    return "unexpected character" if k != len(text) else "no digits"


def _parse_number(text: str):
    """Checks ``text`` as a DynamoDB number (up to 38 significant digits,
    magnitude 1E-130 to 9.99..E+125) and returns its parts:
    ``(negative, int, frac, exp_text, significant, magnitude)``, where
    ``significant`` is empty for zero. Raises ``_Invalid(why)``."""
    m = _NUMBER.fullmatch(text)
    if m is None:
        raise _Invalid(_number_problem(text))
    sign, int_, frac, exp_text = m.groups()
    frac = frac or ""
    if not int_ and not frac:
        raise _Invalid("no digits")
    negative = sign == "-"
    digits = int_ + frac
    rest = digits.lstrip("0")
    if not rest:
        return (negative, int_, frac, exp_text or "", "", 0)
    first = len(digits) - len(rest)
    significant = rest.rstrip("0")
    if len(significant) > _MAX_DIGITS:
        raise _Invalid("more than 38 significant digits")
    exp = 0
    if exp_text:
        e = exp_text[1:]
        exp_negative = e[0] == "-"
        e = e.lstrip("+-").lstrip("0")
        # Saturate, as ddb-core does: anything this large is out of range anyway.
        exp = _EXP_CAP if len(e) > 13 else min(int(e or "0"), _EXP_CAP)
        if exp_negative:
            exp = -exp
    else:
        exp_text = ""
    magnitude = len(int_) - 1 - first + exp
    if magnitude > _MAX_EXP:
        raise _Invalid("larger than 9.9999999999999999999999999999999999999E+125")
    if magnitude < _MIN_EXP:
        raise _Invalid("smaller than 1E-130")
    return (negative, int_, frac, exp_text, significant, magnitude)


def _json_spelling(p) -> str:
    """The number as a JSON token with the digits as written: only what JSON's
    grammar refuses is fixed (a ``+``, leading zeros, ``.5``, ``5.``)."""
    negative, int_, frac, exp_text, significant, _ = p
    if not significant:
        return "-0" if negative else "0"
    out = "-" if negative else ""
    out += int_.lstrip("0") or "0"
    if frac:
        out += "." + frac
    return out + exp_text


def _canonical_spelling(p) -> str:
    """DynamoDB's own spelling, one per value: plain decimal notation, no
    exponent, no ``+``, no leading or trailing zeros, zero as ``0``."""
    negative, _, _, _, significant, magnitude = p
    if not significant:
        return "0"
    out = "-" if negative else ""
    if magnitude >= 0:
        if len(significant) > magnitude + 1:
            return out + significant[: magnitude + 1] + "." + significant[magnitude + 1 :]
        return out + significant + "0" * (magnitude + 1 - len(significant))
    return out + "0." + "0" * (-magnitude - 1) + significant


# Texts that are their own image spelling and canonical spelling: "0" and
# whole numbers of up to 38 digits with no leading zero.
_PLAIN_INTEGER = re.compile(r"0|[1-9][0-9]{0,37}")
# Texts that are their own image spelling: non-zero JSON decimals with no
# exponent; _n_json also caps the length, which keeps them within DynamoDB's
# digits and magnitudes.
_PLAIN_DECIMAL = re.compile(r"-?(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)")


def _n_json(text: str) -> str:
    """An ``N`` value as the JSON token images hold; raises ``_Invalid``."""
    if len(text) <= 38 and _PLAIN_DECIMAL.fullmatch(text) or text == "0":
        return text  # the common case: already spelled as JSON wants
    return _json_spelling(_parse_number(text))


def _n_canonical(text: str) -> str:
    if text.isdigit() and text.isascii() and len(text) <= _MAX_DIGITS and (text[0] != "0" or text == "0"):
        return text
    return _canonical_spelling(_parse_number(text))


def canonical_number(text: str) -> str:
    """DynamoDB's spelling of the number ``text`` (as in keys): ``"1.50E1"``
    gives ``"15"``. Raises ``ValueError`` for text that is not a DynamoDB number."""
    try:
        return _n_canonical(text)
    except _Invalid as e:
        raise ValueError(f"invalid number {_debug(text)}: {e.args[0]}") from None


class Number(Decimal):
    """A number read from a record: a ``decimal.Decimal`` that remembers its
    JSON spelling (``json``), so :func:`to_json` writes it back unchanged,
    e.g. ``2.50`` stays ``2.50`` and ``1.5e+10`` stays ``1.5e+10``.
    Arithmetic gives plain ``Decimal`` values, which :func:`to_json` writes as
    ``str(value)`` does."""

    __slots__ = ("json",)

    def __new__(cls, json_text: str):
        self = Decimal.__new__(cls, json_text)
        self.json = json_text
        return self

    def __reduce__(self):
        return (Number, (self.json,))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


# ---------------------------------------------------------------------------
# Base64 (attr.rs check_base64)
# ---------------------------------------------------------------------------

_B64_BODY = re.compile(r"[A-Za-z0-9+/]*")
_B64_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _base64_problem(text: str) -> str | None:
    """Why ``text`` is not standard, padded, canonical base64 (the bits that
    padding leaves over are zero), or ``None`` if it is."""
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size % 4:
        return "length is not a multiple of 4"
    body = text[:-2] if text.endswith("==") else text[:-1] if text.endswith("=") else text
    if not _B64_BODY.fullmatch(body):
        return "character outside the base64 alphabet"
    padding = len(text) - len(body)
    if padding and _B64_VALUE[body[-1]] & (0b1111 if padding == 2 else 0b11):
        return "non-zero padding bits (not canonical base64)"
    return None


def _base64_ok(text: str) -> bool:
    if len(text) % 4 or not text.isascii():
        return False
    return _base64_problem(text) is None


# ---------------------------------------------------------------------------
# The fast path: json.loads, then a walk over the parsed record
# ---------------------------------------------------------------------------


class _Raw(str):
    """A bare JSON number token, as written."""

    __slots__ = ()


class _Dup:
    """An object with a member name twice; refused where ddb-core checks."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


def _object(pairs):
    d = dict(pairs)
    return d if len(d) == len(pairs) else _Dup(pairs)


def _raw_number(token: str) -> _Raw:
    # Python's own JSON scanner (used when the C one is missing) reads
    # non-ASCII digits as digits; JSON does not.
    if not token.isascii():
        raise _Slow(token)
    return _Raw(token)


def _no_constant(name):
    raise _Slow(name)


_loads_record = json.JSONDecoder(
    object_pairs_hook=_object, parse_int=_raw_number, parse_float=_raw_number, parse_constant=_no_constant
).decode

# Whether json.loads runs in C. Python's own scanner reads a \u escape with
# int(..., 16), which also takes "+1a2", " 1a2" or "1_a2"; without the C
# scanner, every record with a \u escape goes to the exact scanner.
_C_JSON = json.scanner.c_make_scanner is not None and json.decoder.c_scanstring is not None

# "\u" and a surrogate's code (an escape unless the backslash is itself
# escaped), and the escape of a low surrogate, which must follow a high one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD]([89a-fA-F])[0-9a-fA-F]{2}")
_LOW_SURROGATE_ESCAPE = re.compile(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
# The only escapes that decode to a base64 character (and a few more).
_ALPHABET_ESCAPE = re.compile(r"\\(?:/|u00[2-7])")
# A string token made of base64 characters and escapes, at least one of them.
_ESCAPED_PLAIN = re.compile(
    r'"[A-Za-z0-9+/=]*\\(?:[^u]|u[0-9a-fA-F]{4})(?:[A-Za-z0-9+/=]|\\(?:[^u]|u[0-9a-fA-F]{4}))*"'
)
_ALPHABET = re.compile(r"[A-Za-z0-9+/=]*")


def _needs_exact(text: str) -> bool:
    """Whether ``text`` has escapes that ddb-core sees but a parsed value hides.

    ddb-core reads type tags, ``ApproximateCreationDateTimePrecision``,
    ``WriteTimestampMicros`` strings and base64 as written (an escaped
    ``"\\u0053"`` is not the tag ``S``), all of them spelled in the base64
    alphabet; and it refuses an unpaired surrogate escape, which ``json.loads``
    accepts. A false alarm only costs time.
    """
    if "\\" not in text:
        return False
    if not _C_JSON and "\\u" in text:
        return True
    if _lone_surrogate(text):
        return True
    if not _ALPHABET_ESCAPE.search(text):
        return False
    for m in _ESCAPED_PLAIN.finditer(text):
        try:
            value = json.loads(m.group())
        except ValueError:
            return True
        if _ALPHABET.fullmatch(value):
            return True
    return False


def _lone_surrogate(text: str) -> bool:
    """Whether ``text`` has a \\u escape of a surrogate that is not half of a pair."""
    pos = 0
    while True:
        m = _SURROGATE_ESCAPE.search(text, pos)
        if m is None:
            return False
        pos = m.end()
        start = before = m.start()
        while before and text[before - 1] == "\\":
            before -= 1
        if (start - before) % 2:
            continue  # an escaped backslash, then a plain "u"
        if m.group(1) not in "89abAB":
            return True  # a low surrogate first
        low = _LOW_SURROGATE_ESCAPE.match(text, pos)
        if low is None:
            return True
        pos = low.end()


def _too_deep(v, limit: int) -> bool:
    """Whether a skipped value nests more than ``limit`` levels below itself."""
    t = type(v)
    if t is dict:
        children = v.values()
    elif t is list:
        children = v
    elif t is _Dup:
        children = [x for _, x in v.pairs]
    else:
        return False
    if not children:
        return False
    if limit <= 0:
        return True
    return any(_too_deep(c, limit - 1) for c in children)


def _f_value(a, depth: int) -> str:
    """One attribute value as plain JSON (attr.rs write_value)."""
    if depth > MAX_DEPTH or type(a) is not dict or len(a) != 1:
        raise _Slow
    [(tag, x)] = a.items()
    t = type(x)
    if tag == "S":
        if t is str:
            return _quote(x)
    elif tag == "N":
        if t is str:
            try:
                return _n_json(x)
            except _Invalid:
                raise _Slow from None
    elif tag == "M":
        if t is dict:
            return _f_map(x, depth + 1)
    elif tag == "L":
        if t is list:
            d = depth + 1
            return "[" + ",".join([_f_value(y, d) for y in x]) + "]"
    elif tag == "BOOL":
        if x is True:
            return "true"
        if x is False:
            return "false"
    elif tag == "NULL":
        if x is True:
            return "null"
    elif tag == "B":
        if t is str and _base64_ok(x):
            return '"' + x + '"'
    elif tag == "SS":
        if t is list and x and all(type(e) is str for e in x) and len(set(x)) == len(x):
            return "[" + ",".join(map(_quote, x)) + "]"
    elif tag == "NS":
        if t is list and x and all(type(e) is str for e in x):
            if all(_PLAIN_INTEGER.fullmatch(e) for e in x):
                if len(set(x)) == len(x):
                    return "[" + ",".join(x) + "]"
                raise _Slow
            try:
                parsed = [_parse_number(e) for e in x]
            except _Invalid:
                raise _Slow from None
            if len({_canonical_spelling(p) for p in parsed}) == len(x):
                return "[" + ",".join(map(_json_spelling, parsed)) + "]"
    elif tag == "BS":
        if t is list and x and all(type(e) is str and _base64_ok(e) for e in x) and len(set(x)) == len(x):
            return "[" + ",".join(['"' + e + '"' for e in x]) + "]"
    raise _Slow


def _f_map(m, depth: int) -> str:
    """A map body (``NewImage``, ``Item``, ``M``) as plain JSON (attr.rs
    write_map), its values at ``depth``."""
    if type(m) is not dict or depth > MAX_DEPTH:
        raise _Slow
    out = []
    for k, a in m.items():
        # S and N inline: most attributes are one or the other.
        if type(a) is dict and len(a) == 1:
            x = a.get("S")
            if type(x) is str:
                out.append(_quote(k) + ":" + _quote(x))
                continue
            x = a.get("N")
            if type(x) is str:
                try:
                    out.append(_quote(k) + ":" + _n_json(x))
                except _Invalid:
                    raise _Slow from None
                continue
        out.append(_quote(k) + ":" + _f_value(a, depth))
    return "{" + ",".join(out) + "}"


def _f_key_value(a) -> str:
    """key.rs key_value: S, N or B, not empty."""
    if type(a) is dict and len(a) == 1:
        [(tag, x)] = a.items()
        if type(x) is str and x:
            if tag == "S":
                return _quote(x)
            if tag == "N":
                try:
                    return _n_canonical(x)
                except _Invalid:
                    raise _Slow from None
            if tag == "B" and _base64_ok(x):
                return '"' + x + '"'
    raise _Slow


def _key_object(parts) -> str:
    """``(name, value JSON)`` pairs, already sorted, as a compact JSON object."""
    return "{" + ",".join([_quote(name) + ":" + value for name, value in parts]) + "}"


def _f_keys(keys) -> str:
    if type(keys) is not dict or not keys:
        raise _Slow
    return _key_object(sorted([(name, _f_key_value(a)) for name, a in keys.items()]))


def _parse_u64(text: str):
    """Rust's ``str::parse::<u64>`` (an optional ``+``, ASCII digits, in range), or ``None``."""
    digits = text[1:] if text[:1] == "+" else text
    if not (digits.isdigit() and digits.isascii()):
        return None
    digits = digits.lstrip("0")
    if len(digits) > 20:
        return None
    n = int(digits or "0")
    return n if n <= U64_MAX else None


def _f_stream(text: str) -> Change:
    top = _loads_record(text)
    if type(top) is not dict:
        raise _Slow
    deep = text.count("{") + text.count("[") > MAX_DEPTH - 2
    event_id = event_name = table = created = key = new_image = old_image = None
    by_ttl = micro = False
    for name, v in top.items():
        if name == "dynamodb":
            if type(v) is not dict:
                raise _Slow
            for field, x in v.items():
                if field == "NewImage":
                    new_image = _f_map(x, 2)
                elif field == "Keys":
                    key = _f_keys(x)
                elif field == "OldImage":
                    old_image = _f_map(x, 2)
                elif field == "ApproximateCreationDateTime":
                    if type(x) is not _Raw:
                        raise _Slow
                    created = _parse_u64(x)  # a JSON number token has no '+'
                elif field == "ApproximateCreationDateTimePrecision":
                    if type(x) is not str or x not in ("MICROSECOND", "MILLISECOND"):
                        raise _Slow
                    micro = x == "MICROSECOND"
                elif deep and _too_deep(x, MAX_DEPTH - 2):
                    raise _Slow
        elif name == "eventID" or name == "eventName" or name == "tableName" or name == "eventSource":
            if type(v) is not str:
                raise _Slow
            if name == "eventID":
                event_id = v
            elif name == "eventName":
                event_name = v
            elif name == "tableName":
                table = v
            elif v != "aws:dynamodb":
                raise _Slow
        elif name == "userIdentity":
            if v is None:
                by_ttl = False
            elif type(v) is dict:
                kind = principal = None
                for field, x in v.items():
                    if field == "type" or field == "principalId":
                        if type(x) is not str:
                            raise _Slow
                        if field == "type":
                            kind = x
                        else:
                            principal = x
                    elif deep and _too_deep(x, MAX_DEPTH - 2):
                        raise _Slow
                by_ttl = kind == "Service" and principal == "dynamodb.amazonaws.com"
            else:
                raise _Slow
        elif deep and _too_deep(v, MAX_DEPTH - 1):
            raise _Slow
    if event_name == "INSERT" or event_name == "MODIFY":
        operation = "upsert"
        if new_image is None:
            raise _Slow
    elif event_name == "REMOVE":
        operation = "ttl-delete" if by_ttl else "delete"
    else:
        raise _Slow
    if created is None or table is None or key is None or event_id is None:
        raise _Slow
    micros = created if micro else created * 1000
    if micros > U64_MAX:
        raise _Slow
    return Change(table, key, operation, micros, "", event_name, event_id, new_image, old_image)


def _f_export(text: str, table: str, keys: list[str], export_micros: int, incremental: bool) -> Change:
    top = _loads_record(text)
    if type(top) is not dict:
        raise _Slow
    deep = text.count("{") + text.count("[") > MAX_DEPTH - 2
    item = written = key = new_image = old_image = None
    for name, v in top.items():
        if not incremental and name == "Item":
            if not keys or type(v) is not dict:
                raise _Slow
            names = dict.fromkeys(keys)
            parts = []
            for attr, a in v.items():
                if attr in names:
                    parts.append((attr, _f_key_value(a)))
                elif deep and _too_deep(a, MAX_DEPTH - 1):
                    raise _Slow  # key.rs item_key skips it with skip_value(1)
            if len(parts) != len(names):
                raise _Slow
            key = _key_object(sorted(parts))
            item = _f_map(v, 1)
        elif incremental and name == "Metadata":
            if type(v) is not dict:
                raise _Slow
            for field, x in v.items():
                if field == "WriteTimestampMicros":
                    t = type(x)
                    if t is dict and len(x) == 1 and type(x.get("N")) is str:
                        written = _parse_u64(x["N"])
                    elif t is str or t is _Raw:
                        written = _parse_u64(x)
                    else:
                        raise _Slow
                elif deep and _too_deep(x, MAX_DEPTH - 2):
                    raise _Slow
            if written is None:
                raise _Slow
        elif incremental and name == "Keys":
            key = _f_keys(v)
        elif incremental and name == "NewImage":
            new_image = _f_map(v, 1)
        elif incremental and name == "OldImage":
            old_image = _f_map(v, 1)
        elif deep and _too_deep(v, MAX_DEPTH - 1):
            raise _Slow
    if not incremental:
        if item is None:
            raise _Slow
        return Change(table, key, "upsert", export_micros, "", "BULK_LOAD", "", item, None)
    if written is None or key is None:
        raise _Slow
    return _incremental_change(table, key, written, new_image, old_image)


def _incremental_change(table: str, key: str, micros: int, new_image, old_image) -> Change:
    """An incremental export line's row: no NewImage is a REMOVE."""
    if new_image is None:
        operation, event_name = "delete", "REMOVE"
    else:
        operation, event_name = "upsert", "INSERT" if old_image is None else "MODIFY"
    return Change(table, key, operation, micros, "", event_name, "", new_image, old_image)


# ---------------------------------------------------------------------------
# The exact path: a port of ddb-core's scanner and decoders, byte for byte
# ---------------------------------------------------------------------------

_WS = re.compile(rb"[ \n\r\t]*")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')
_BDIGITS = re.compile(rb"[0-9]*")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _describe(b: int) -> str:
    return f"'{chr(b)}'" if 0x21 <= b <= 0x7E else f"byte 0x{b:02x}"


class _RawStr:
    """A string token as written: its body's bytes, escapes left as they are."""

    __slots__ = ("raw", "escaped", "start")

    def __init__(self, raw: bytes, escaped: bool, start: int):
        self.raw = raw
        self.escaped = escaped
        self.start = start  # just after the opening quote

    def text(self) -> str:
        """The body as written (escapes kept)."""
        return self.raw.decode("utf-8")

    def unescape(self) -> str:
        text = self.raw.decode("utf-8")
        return json.loads('"' + text + '"') if self.escaped else text


class _Scanner:
    """scan.rs ``Scanner``: a validating JSON scanner over UTF-8 bytes."""

    __slots__ = ("b", "pos", "n")

    def __init__(self, b: bytes, pos: int = 0):
        self.b = b
        self.pos = pos
        self.n = len(b)

    def clone(self) -> "_Scanner":
        return _Scanner(self.b, self.pos)

    def error(self, reason: str) -> DecodeError:
        return DecodeError(reason, self.pos)

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.b, self.pos).end()

    def peek(self):
        self.skip_ws()
        return self.b[self.pos] if self.pos < self.n else None

    def expect(self, want: int) -> None:
        if self.pos < self.n and self.b[self.pos] == want:
            self.pos += 1
            return
        c = self.peek()
        if c == want:
            self.pos += 1
            return
        if c is None:
            raise self.error(f"expected '{chr(want)}' but the input ended")
        raise self.error(f"expected '{chr(want)}' but found {_describe(c)}")

    def end(self) -> None:
        c = self.peek()
        if c is not None:
            raise self.error(f"unexpected {_describe(c)} after the end of the record")

    def begin_object(self) -> None:
        self.expect(0x7B)

    def next_member(self, first: bool):
        c = self.peek()
        if c == 0x7D:
            self.pos += 1
            return None
        if c == 0x2C and not first:
            self.pos += 1
        elif not first:
            raise self.unexpected("',' or '}'")
        if self.peek() != 0x22:
            raise self.unexpected("a member name")
        self.pos += 1
        name = self.string_body()
        self.expect(0x3A)
        return name

    def names(self):
        """Reads an object: yields each member's name and leaves its value to
        the caller."""
        self.begin_object()
        first = True
        while (name := self.next_member(first)) is not None:
            first = False
            yield name

    def members(self):
        """Like :meth:`names`, but yields ``(name, unescaped name)`` and
        refuses a name twice (compared unescaped)."""
        seen = set()
        for name in self.names():
            field = name.unescape()
            if field in seen:
                raise DecodeError(f"duplicate member name {_debug(field)}", name.start - 1)
            seen.add(field)
            yield name, field

    def type_tag(self) -> str:
        self.begin_object()
        tag = self.next_member(True)
        if tag is None:
            raise self.error('an attribute value needs a type, e.g. {"S": ...}')
        return tag.text()

    def close_value(self) -> None:
        c = self.peek()
        if c == 0x7D:
            self.pos += 1
            return
        if c == 0x2C:
            raise self.error("an attribute value must have exactly one type")
        raise self.unexpected("'}'")

    def begin_array(self) -> None:
        self.expect(0x5B)

    def elements(self):
        """Reads an array: yields each element's index and leaves the element
        to the caller."""
        self.begin_array()
        index = 0
        while self.next_element(index == 0):
            yield index
            index += 1

    def next_element(self, first: bool) -> bool:
        c = self.peek()
        if c == 0x5D:
            self.pos += 1
            return False
        if c == 0x2C and not first:
            self.pos += 1
            return True
        if c is not None and first:
            return True
        raise self.unexpected("',' or ']'")

    def unexpected(self, want: str) -> DecodeError:
        if self.pos < self.n:
            return self.error(f"expected {want} but found {_describe(self.b[self.pos])}")
        return self.error(f"expected {want} but the input ended")

    def string(self) -> _RawStr:
        self.expect(0x22)
        return self.string_body()

    def string_body(self) -> _RawStr:
        b, start, escaped = self.b, self.pos, False
        while True:
            self.pos = _PLAIN.match(b, self.pos).end()
            c = b[self.pos] if self.pos < self.n else None
            if c == 0x22:
                raw = b[start : self.pos]
                self.pos += 1
                return _RawStr(raw, escaped, start)
            if c == 0x5C:
                escaped = True
                self.escape()
            elif c is not None:
                raise self.error(f"control character 0x{c:02x} must be escaped inside a string")
            else:
                raise self.error("unterminated string")

    def escape(self) -> None:
        at, b = self.pos, self.b
        c = b[at + 1] if at + 1 < self.n else None
        if c is not None and c in b'"\\/bfnrt':
            self.pos += 2
        elif c == 0x75:
            unit = self.hex4(at + 2)
            self.pos = at + 6
            if 0xD800 <= unit < 0xDC00:
                if b[at + 6 : at + 8] != b"\\u":
                    raise DecodeError("unpaired surrogate in \\u escape", at)
                low = self.hex4(at + 8)
                if not 0xDC00 <= low < 0xE000:
                    raise DecodeError("unpaired surrogate in \\u escape", at)
                self.pos = at + 12
            elif 0xDC00 <= unit < 0xE000:
                raise DecodeError("unpaired surrogate in \\u escape", at)
        else:
            raise DecodeError("invalid escape sequence", at)

    def hex4(self, at: int) -> int:
        digits = self.b[at : at + 4]
        if len(digits) < 4:
            raise DecodeError("truncated \\u escape", at)
        if not all(d in _HEX for d in digits):
            raise DecodeError("invalid hex digit in \\u escape", at)
        return int(digits, 16)

    def number(self) -> str:
        self.skip_ws()
        b, start, n = self.b, self.pos, self.n
        i = start
        if i < n and b[i] == 0x2D:
            i += 1
        c = b[i] if i < n else None
        if c == 0x30:
            i += 1
        elif c is not None and 0x31 <= c <= 0x39:
            i = _BDIGITS.match(b, i).end()
        else:
            raise DecodeError("invalid number", start)
        if i < n and b[i] == 0x2E:
            k = _BDIGITS.match(b, i + 1).end()
            if k == i + 1:
                raise DecodeError("invalid number: no digits after '.'", start)
            i = k
        if i < n and b[i] in (0x65, 0x45):
            i += 1
            if i < n and b[i] in (0x2B, 0x2D):
                i += 1
            k = _BDIGITS.match(b, i).end()
            if k == i:
                raise DecodeError("invalid number: no digits in exponent", start)
            i = k
        self.pos = i
        return b[start:i].decode("ascii")

    def boolean(self) -> bool:
        c = self.peek()
        if c == 0x74:
            self.literal(b"true")
            return True
        if c == 0x66:
            self.literal(b"false")
            return False
        raise self.unexpected("true or false")

    def null(self) -> bool:
        if self.peek() == 0x6E:
            self.literal(b"null")
            return True
        return False

    def literal(self, word: bytes) -> None:
        if self.b.startswith(word, self.pos):
            self.pos += len(word)
        else:
            raise self.error(f"expected {word.decode()}")

    def skip_value(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels")
        c = self.peek()
        if c == 0x22:
            self.string()
        elif c == 0x7B:
            for _ in self.names():  # as ddb-core: names in skipped values are not checked
                self.skip_value(depth + 1)
        elif c == 0x5B:
            for _ in self.elements():
                self.skip_value(depth + 1)
        elif c in (0x74, 0x66):
            self.boolean()
        elif c == 0x6E:
            self.null()
        elif c is not None and (c == 0x2D or 0x30 <= c <= 0x39):
            self.number()
        else:
            raise self.unexpected("a value")


def _raw_json(r: _RawStr) -> str:
    return '"' + r.text() + '"'


def _x_number(text: str, at: int):
    try:
        return _parse_number(text)
    except _Invalid as e:
        raise DecodeError(f"invalid number {_debug(text)}: {e.args[0]}", at) from None


def _x_base64(s: _Scanner, out: list) -> _RawStr:
    at = s.pos
    r = s.string()
    why = _base64_problem(r.text())
    if why is not None:
        raise DecodeError(f"invalid base64 in binary value: {why}", at)
    out.append(_raw_json(r))
    return r


def _x_list(s: _Scanner, out: list, item) -> int:
    """Writes an array, ``item(s, out)`` writing each element; returns the
    number of elements."""
    out.append("[")
    count = 0
    for index in s.elements():
        if index:
            out.append(",")
        try:
            item(s, out)
        except DecodeError as e:
            raise e.within(f"[{index}]")
        count += 1
    out.append("]")
    return count


def _x_set(s: _Scanner, out: list, tag: str, element) -> None:
    at = s.pos
    seen = set()

    def item(s, out):
        start = s.pos
        value, raw = element(s, out)
        if value in seen:
            how = " (numbers are compared by value)" if tag == "NS" else ""
            raise DecodeError(f'duplicate {tag} element "{raw}"{how}', start)
        seen.add(value)

    if _x_list(s, out, item) == 0:
        raise DecodeError(f"empty {tag} set (DynamoDB sets are non-empty)", at)


def _x_ss_element(s, out):
    r = s.string()
    out.append(_raw_json(r))
    return r.unescape(), r.text()


def _x_ns_element(s, out):
    at = s.pos
    r = s.string()
    p = _x_number(r.unescape(), at)
    out.append(_json_spelling(p))
    return _canonical_spelling(p), r.text()


def _x_bs_element(s, out):
    r = _x_base64(s, out)
    return r.raw, r.text()


def _x_value(s: _Scanner, out: list, depth: int) -> None:
    """attr.rs write_value."""
    if depth > MAX_DEPTH:
        raise s.error(f"nested deeper than {MAX_DEPTH} levels")
    tag = s.type_tag()
    if tag == "S":
        out.append(_raw_json(s.string()))
    elif tag == "N":
        at = s.pos
        out.append(_json_spelling(_x_number(s.string().unescape(), at)))
    elif tag == "B":
        _x_base64(s, out)
    elif tag == "BOOL":
        out.append("true" if s.boolean() else "false")
    elif tag == "NULL":
        if not s.boolean():
            raise s.error("NULL must be true")
        out.append("null")
    elif tag == "M":
        _x_map(s, out, depth + 1)
    elif tag == "L":
        _x_list(s, out, lambda s, out: _x_value(s, out, depth + 1))
    elif tag == "SS":
        _x_set(s, out, "SS", _x_ss_element)
    elif tag == "NS":
        _x_set(s, out, "NS", _x_ns_element)
    elif tag == "BS":
        _x_set(s, out, "BS", _x_bs_element)
    else:
        raise s.error(
            f"unknown attribute type {_debug(tag)} (expected S, N, B, BOOL, NULL, M, L, SS, NS or BS)"
        )
    s.close_value()


def _x_map(s: _Scanner, out: list, depth: int) -> None:
    """attr.rs write_map."""
    out.append("{")
    comma = ""
    for name, _ in s.members():
        out.append(comma + _raw_json(name) + ":")
        comma = ","
        try:
            _x_value(s, out, depth)
        except DecodeError as e:
            raise e.within(name.text())
    out.append("}")


def _x_image(s: _Scanner, depth: int) -> str:
    out: list = []
    _x_map(s, out, depth)
    return "".join(out)


def _x_key_value(s: _Scanner) -> str:
    """key.rs key_value."""
    tag = s.type_tag()
    at = s.pos
    if tag == "S":
        r = s.string()
        if not r.raw:
            raise DecodeError("an empty string cannot be a key value", at)
        value = _quote(r.unescape()) if r.escaped else _raw_json(r)
    elif tag == "N":
        value = _canonical_spelling(_x_number(s.string().unescape(), at))
    elif tag == "B":
        out: list = []
        if not _x_base64(s, out).raw:
            raise DecodeError("an empty binary cannot be a key value", at)
        value = out[0]
    else:
        raise s.error(f"a key attribute must be S, N or B, not {_debug(tag)}")
    s.close_value()
    return value


def _canonical(parts: list) -> str:
    # Sorted as Rust sorts strings: by UTF-8 bytes (code points, for valid text).
    parts.sort(key=lambda p: p[0].encode("utf-8", "surrogatepass"))
    return _key_object(parts)


def _x_keys(s: _Scanner) -> str:
    """key.rs read_keys."""
    parts = []
    for name, field in s.members():
        try:
            value = _x_key_value(s)
        except DecodeError as e:
            raise e.within(name.text())
        parts.append((field, value))
    if not parts:
        raise s.error("Keys has no attributes")
    return _canonical(parts)


def _x_item_key(s: _Scanner, names: list[str]) -> str:
    """key.rs item_key."""
    parts = []
    for name, field in s.members():
        if field in names:
            try:
                value = _x_key_value(s)
            except DecodeError as e:
                raise e.within(name.text())
            parts.append((field, value))
        else:
            s.skip_value(1)
    found = {p[0] for p in parts}
    for missing in names:
        if missing not in found:
            raise DecodeError(f"the item has no key attribute {_debug(missing)}")
    return _canonical(parts)


def _x_text(s: _Scanner, field: str) -> str:
    try:
        return s.string().unescape()
    except DecodeError as e:
        raise e.within(field)


def _x_user_identity(s: _Scanner) -> bool:
    if s.null():
        return False
    service = dynamodb = False
    for _, field in s.members():
        if field == "type":
            service = s.string().unescape() == "Service"
        elif field == "principalId":
            dynamodb = s.string().unescape() == "dynamodb.amazonaws.com"
        else:
            s.skip_value(2)
    return service and dynamodb


def _x_dynamodb(s: _Scanner, f: dict) -> None:
    for _, field in s.members():
        if field not in _DYNAMODB_FIELDS:
            s.skip_value(2)
            continue
        try:
            if field == "ApproximateCreationDateTime":
                at = s.pos
                text = s.number()
                created = _parse_u64(text)
                if created is None:
                    raise DecodeError(
                        f"{text} is not a whole, non-negative number of milliseconds or microseconds", at
                    )
                f["created"] = created
            elif field == "ApproximateCreationDateTimePrecision":
                raw = s.string().text()
                if raw not in ("MICROSECOND", "MILLISECOND"):
                    raise s.error(f"{_debug(raw)} is not MILLISECOND or MICROSECOND")
                f["micro"] = raw == "MICROSECOND"
            elif field == "Keys":
                f["key"] = _x_keys(s)
            elif field == "NewImage":
                f["new_image"] = _x_image(s, 2)
            else:
                f["old_image"] = _x_image(s, 2)
        except DecodeError as e:
            raise e.within(field)


_DYNAMODB_FIELDS = frozenset(
    ("ApproximateCreationDateTime", "ApproximateCreationDateTimePrecision", "Keys", "NewImage", "OldImage")
)


def _x_stream(payload: bytes) -> Change:
    """stream.rs decode_stream_record."""
    s = _Scanner(payload)
    f: dict = {}
    for _, field in s.members():
        if field == "eventID":
            f["event_id"] = _x_text(s, field)
        elif field == "eventName":
            f["event_name"] = _x_text(s, field)
        elif field == "tableName":
            f["table"] = _x_text(s, field)
        elif field == "eventSource":
            source = _x_text(s, field)
            if source != "aws:dynamodb":
                raise s.error(f'eventSource is {_debug(source)}, not "aws:dynamodb"')
        elif field == "userIdentity":
            try:
                f["by_ttl"] = _x_user_identity(s)
            except DecodeError as e:
                raise e.within(field)
        elif field == "dynamodb":
            try:
                _x_dynamodb(s, f)
            except DecodeError as e:
                raise e.within(field)
        else:
            s.skip_value(1)
    s.end()

    event_name = f.get("event_name")
    if event_name is None:
        raise DecodeError("the record has no eventName")
    if event_name in ("INSERT", "MODIFY"):
        operation = "upsert"
    elif event_name == "REMOVE":
        operation = "ttl-delete" if f.get("by_ttl") else "delete"
    else:
        raise DecodeError(f"eventName {_debug(event_name)} is not INSERT, MODIFY or REMOVE")
    if operation == "upsert" and f.get("new_image") is None:
        raise DecodeError(f"the record has no dynamodb.NewImage, which an {event_name} needs")
    created = f.get("created")
    if created is None:
        raise DecodeError("the record has no dynamodb.ApproximateCreationDateTime")
    micros = created if f.get("micro") else created * 1000
    if micros > U64_MAX:
        raise DecodeError("ApproximateCreationDateTime is out of range")
    for field, what in (("table", "tableName"), ("key", "dynamodb.Keys"), ("event_id", "eventID")):
        if f.get(field) is None:
            raise DecodeError(f"the record has no {what}")
    return Change(
        f["table"], f["key"], operation, micros, "", event_name, f["event_id"], f.get("new_image"), f.get("old_image")
    )


def _x_metadata(s: _Scanner) -> int:
    micros = None
    for _, field in s.members():
        if field != "WriteTimestampMicros":
            s.skip_value(2)
            continue
        at = s.pos
        c = s.peek()
        if c == 0x7B:
            tag = s.type_tag()
            if tag != "N":
                raise s.error(f"WriteTimestampMicros must be N, not {_debug(tag)}")
            text = s.string().text()
            s.close_value()
        elif c == 0x22:
            text = s.string().text()
        else:
            text = s.number()
        micros = _parse_u64(text)
        if micros is None:
            raise DecodeError(f"WriteTimestampMicros {_debug(text)} is not a whole number of microseconds", at)
    if micros is None:
        raise DecodeError("Metadata has no WriteTimestampMicros")
    return micros


def _x_export(payload: bytes, table: str, keys: list[str], export_micros: int, incremental: bool) -> Change:
    """export.rs decode_export_line."""
    s = _Scanner(payload)
    item = written = key = new_image = old_image = None
    for _, field in s.members():
        if field == "Item" and not incremental:
            if not keys:
                raise DecodeError(
                    "a full export's items carry no key: list the key attributes of table "
                    f"{_debug(table)} in the manifest's `keys`"
                )
            try:
                key = _x_item_key(s.clone(), keys)
                item = _x_image(s, 1)
            except DecodeError as e:
                raise e.within(field)
        elif incremental and field in ("Metadata", "Keys", "NewImage", "OldImage"):
            try:
                if field == "Metadata":
                    written = _x_metadata(s)
                elif field == "Keys":
                    key = _x_keys(s)
                elif field == "NewImage":
                    new_image = _x_image(s, 1)
                else:
                    old_image = _x_image(s, 1)
            except DecodeError as e:
                raise e.within(field)
        else:
            s.skip_value(1)
    s.end()
    if not incremental:
        if item is None:
            raise DecodeError("the line has no Item (is this a full export's data file?)")
        return Change(table, key, "upsert", export_micros, "", "BULK_LOAD", "", item, None)
    if written is None:
        raise DecodeError(
            "the line has no Metadata.WriteTimestampMicros (is this an incremental export's data file?)"
        )
    if key is None:
        raise DecodeError("the line has no Keys")
    return _incremental_change(table, key, written, new_image, old_image)


# ---------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------


def _utf8(payload, what: str) -> tuple[bytes, str]:
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    elif not isinstance(payload, bytes):
        payload = bytes(payload)
    try:
        return payload, payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"the {what} is not valid UTF-8", e.start) from None


def _check_sequence(sequence) -> None:
    if not isinstance(sequence, str):
        raise TypeError(f"sequence must be the record's sequence string, not {type(sequence).__name__}")


def _decode(payload, sequence: str, what: str, fast, exact, *args) -> Change:
    """The fast path if it is sure, else the exact one."""
    data, text = _utf8(payload, what)
    change = None
    if not _needs_exact(text):
        try:
            change = fast(text, *args)
        except Exception:  # anything unusual: the exact scanner decides
            pass
    if change is None:
        change = exact(data, *args)
    check_u64(change.micros, "order.micros")  # always true: decoding checks the range
    change.tiebreak = sequence
    return change


def decode_stream_change(payload: bytes, sequence: str) -> Change:
    """Decodes one "Kinesis Data Streams for DynamoDB" record into the row
    ``builtin:ddb-json`` makes of it; ``sequence`` becomes its tie-breaker.

    ``INSERT`` and ``MODIFY`` are upserts (and need a ``NewImage``),
    ``REMOVE`` is a delete, or a ``ttl-delete`` when ``userIdentity`` is
    DynamoDB's TTL service. ``ApproximateCreationDateTime`` is in
    milliseconds unless ``ApproximateCreationDateTimePrecision`` is
    ``MICROSECOND``. Raises :class:`DecodeError` for anything DynamoDB would
    not have written.

    The images are ddb-core's, byte for byte, unless the record writes a
    string (a name or a value) with a backslash escape: ddb-core copies such
    a string as written, this may write it in the canonical spelling that keys
    use (only ``"``, ``\\`` and control characters escaped), which is the
    same JSON value. Member order and number spelling are always ddb-core's.
    """
    _check_sequence(sequence)
    return _decode(payload, sequence, "record", _f_stream, _x_stream)


def decode_export_line(
    payload: bytes,
    sequence: str,
    *,
    table: str,
    keys: list[str],
    export_time_micros: int,
    incremental: bool,
) -> Change:
    """Decodes one line of a DynamoDB export's data file (DYNAMODB_JSON).

    A full export's line (``{"Item": {...}}``) is an upsert named
    ``BULK_LOAD`` at ``export_time_micros``, keyed by the attributes ``keys``
    (the manifest's key names; a full export does not say which they are).
    An incremental export's line (``Metadata``, ``Keys``, ``NewImage``,
    ``OldImage``) is an ``INSERT`` (no ``OldImage``), ``MODIFY`` or, without
    ``NewImage``, a ``REMOVE``, at its ``WriteTimestampMicros``.
    """
    check_u64(export_time_micros, "export_time_micros")
    _check_sequence(sequence)
    args = (table, list(keys), export_time_micros, incremental)
    return _decode(payload, sequence, "line", _f_export, _x_export, *args)


# ---------------------------------------------------------------------------
# Python values: DynamoDB JSON in, plain JSON out
# ---------------------------------------------------------------------------


def _p_set(x, tag: str, element, distinct):
    if type(x) is not list:
        raise DecodeError(f"{tag} must hold a list, not {type(x).__name__}")
    if not x:
        raise DecodeError(f"empty {tag} set (DynamoDB sets are non-empty)")
    out, seen = [], set()
    for index, e in enumerate(x):
        try:
            value = element(e)
            key = distinct(value)
            if key in seen:
                how = " (numbers are compared by value)" if tag == "NS" else ""
                raise DecodeError(f'duplicate {tag} element "{e}"{how}')
        except DecodeError as err:
            raise err.within(f"[{index}]")
        seen.add(key)
        out.append(value)
    return out


def _p_string(e, tag="S") -> str:
    if type(e) is not str:
        raise DecodeError(f"{tag} must hold a string, not {type(e).__name__}")
    return e


def _p_number(e) -> Number:
    text = _p_string(e, "N")
    try:
        return Number(_n_json(text))
    except _Invalid as err:
        raise DecodeError(f"invalid number {_debug(text)}: {err.args[0]}") from None


def _p_binary(e) -> str:
    text = _p_string(e, "B")
    why = _base64_problem(text)
    if why is not None:
        raise DecodeError(f"invalid base64 in binary value: {why}")
    return text


def plain(attr: dict, _depth: int = 1):
    """One DynamoDB attribute value (``{"N": "2.50"}``, already parsed from
    JSON) as a Python value, with ddb-core's rules and checks: ``S`` gives a
    ``str``, ``N`` a :class:`Number` (a ``Decimal``; never a ``float``), ``B``
    the base64 text as written, ``BOOL`` a ``bool``, ``NULL`` ``None``, ``M`` a
    ``dict``, ``L`` a ``list``, and ``SS``/``NS``/``BS`` lists. Raises
    :class:`DecodeError` (with the path of the bad value) as the decoder
    would, e.g. for an empty set or a repeated set element."""
    if _depth > MAX_DEPTH:
        raise DecodeError(f"nested deeper than {MAX_DEPTH} levels")
    if type(attr) is not dict or not attr:
        raise DecodeError('an attribute value needs a type, e.g. {"S": ...}')
    if len(attr) != 1:
        raise DecodeError("an attribute value must have exactly one type")
    [(tag, x)] = attr.items()
    if tag == "S":
        return _p_string(x)
    if tag == "N":
        return _p_number(x)
    if tag == "B":
        return _p_binary(x)
    if tag == "BOOL":
        if type(x) is not bool:
            raise DecodeError(f"BOOL must hold true or false, not {x!r}")
        return x
    if tag == "NULL":
        if x is not True:
            raise DecodeError("NULL must be true")
        return None
    if tag == "M":
        if type(x) is not dict:
            raise DecodeError(f"M must hold an object, not {type(x).__name__}")
        return plain_item(x, _depth + 1)
    if tag == "L":
        if type(x) is not list:
            raise DecodeError(f"L must hold a list, not {type(x).__name__}")
        out = []
        for index, e in enumerate(x):
            try:
                out.append(plain(e, _depth + 1))
            except DecodeError as err:
                raise err.within(f"[{index}]")
        return out
    if tag == "SS":
        return _p_set(x, "SS", _p_string, lambda v: v)
    if tag == "NS":
        return _p_set(x, "NS", _p_number, lambda v: _canonical_spelling(_parse_number(v.json)))
    if tag == "BS":
        return _p_set(x, "BS", _p_binary, lambda v: v)
    raise DecodeError(f"unknown attribute type {_debug(tag)} (expected S, N, B, BOOL, NULL, M, L, SS, NS or BS)")


def plain_item(item: dict, _depth: int = 1) -> dict:
    """A whole item or map (``{"id": {"S": "a"}, ...}``) as a ``dict`` of
    :func:`plain` values, in the item's order."""
    if type(item) is not dict:
        raise DecodeError(f"an item must be an object, not {type(item).__name__}")
    out = {}
    for name, attr in item.items():
        try:
            out[name] = plain(attr, _depth)
        except DecodeError as err:
            raise err.within(name)
    return out


def canonical_key(keys: dict) -> str:
    """The canonical key of ``keys``, a parsed DynamoDB ``Keys`` object
    (``{"pk": {"S": "a"}, "sk": {"N": "1.0"}}``), exactly as the decoder
    writes ``Change.key``: ``{"pk":"a","sk":1}``."""
    if type(keys) is not dict or not keys:
        raise DecodeError("Keys has no attributes")
    parts = []
    for name, attr in keys.items():
        try:
            if type(attr) is not dict or len(attr) != 1:
                raise DecodeError("a key attribute must be one typed value, e.g. {\"S\": ...}")
            [(tag, x)] = attr.items()
            if tag not in ("S", "N", "B"):
                raise DecodeError(f"a key attribute must be S, N or B, not {_debug(tag)}")
            value = {"S": _p_string, "N": _p_number, "B": _p_binary}[tag](x)
            if tag == "N":
                value = _canonical_spelling(_parse_number(value.json))
            elif not value:
                raise DecodeError(f"an empty {'string' if tag == 'S' else 'binary'} cannot be a key value")
            else:
                value = _quote(value)
        except DecodeError as err:
            raise err.within(name)
        parts.append((name, value))
    return _canonical(parts)


def loads(text: str):
    """Plain JSON text (an image) as Python values: numbers as
    :class:`Number` (keeping their spelling), objects as ``dict`` in order."""
    return json.loads(text, parse_int=Number, parse_float=Number, parse_constant=_refuse_constant)


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def to_json(value) -> str:
    """Compact JSON text of ``value``: ``dict`` (``str`` keys), ``list``,
    ``tuple``, ``str``, ``bool``, ``None``, ``int``, ``Decimal`` and
    :class:`Number`, and ``bytes`` (as base64). Strings are escaped as keys
    are (only ``"``, ``\\`` and control characters); a :class:`Number` is
    written as it was read, another ``Decimal`` as ``str()`` writes it. A
    ``float`` is refused: it cannot hold DynamoDB's numbers exactly."""
    out: list = []
    _write(value, out)
    return "".join(out)


def _write(v, out: list) -> None:
    t = type(v)
    if t is str:
        out.append(_quote(v))
    elif t is Number:
        out.append(v.json)
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif t is dict or isinstance(v, dict):
        out.append("{")
        first = True
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON object keys must be str, not {type(k).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(_quote(k))
            out.append(":")
            _write(x, out)
        out.append("}")
    elif t is list or t is tuple or isinstance(v, (list, tuple)):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _write(x, out)
        out.append("]")
    elif isinstance(v, str):
        out.append(_quote(str(v)))
    elif isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"{v} is not a JSON number")
        out.append(v.json if isinstance(v, Number) else str(v))
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.append('"' + base64.b64encode(bytes(v)).decode("ascii") + '"')
    elif isinstance(v, float):
        raise TypeError(f"float {v!r} cannot be written exactly: use decimal.Decimal (e.g. Decimal(str(x)))")
    else:
        raise TypeError(f"{type(v).__name__} is not JSON serializable")
