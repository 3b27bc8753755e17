#!/usr/bin/env python3
"""Checks ``sluice_guest.ddb`` against the built-in Rust decoder's behaviour.

    python3 guests/sdk-python/test_ddb.py [-v] [--cases DIR]

1. The shared cases in ``tests/cases/ddb-json`` (the ones ``sluice guest
   test`` runs through ``builtin:ddb-json``): every record is decoded and
   rendered as ``host/src/guest/cases.rs`` renders outcomes, then compared
   with the expected line. A case's optional ``<name>.toml`` is read as the
   host reads it (``table``, ``keys``, and ``export`` for export lines).
   Rows must be equal, images as JSON values with numbers compared digit for
   digit (as serde_json's ``arbitrary_precision`` compares them), the key as
   text; for errors it is enough that both are errors, but differing
   messages are printed.
2. Every case record is also decoded by both paths of the decoder (the
   ``json.loads`` walk and the port of the Rust scanner), which must agree.
3. Mutated case records and export lines (a seeded fuzzer) must get the same
   outcome from the public functions as from the exact port.
4. Unit tests, mostly ported from ``guests/ddb-core``'s Rust tests.

Exits non-zero on any failure.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import re
import sys
import unittest
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # leave no __pycache__ in the repository

from sluice_guest import ddb  # noqa: E402
from sluice_guest import (  # noqa: E402
    Change,
    DecodeError,
    Number,
    canonical_key,
    canonical_number,
    check_s64,
    check_u64,
    decode_export_line,
    decode_stream_change,
    loads,
    plain,
    plain_item,
    to_json,
)

CASES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "cases", "ddb-json"))

# ---------------------------------------------------------------------------
# Rendering as host/src/guest/cases.rs does, compared as serde_json compares
# ---------------------------------------------------------------------------

_TOKEN = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(?:[eE]([+-]?)([0-9]+))?")


def _number(token: str):
    """A number as serde_json's arbitrary_precision keeps it: the digits as
    written, the exponent as ``e`` with an explicit sign. A tuple, so that it
    never equals a string."""
    m = _TOKEN.fullmatch(token)
    mantissa, sign, exp = m.groups()
    return ("#number", mantissa if exp is None else f"{mantissa}e{sign or '+'}{exp}")


def document(text: str):
    return json.loads(text, parse_int=_number, parse_float=_number)


def parse_image(text):
    if text is None:
        return None
    try:
        return document(text)
    except ValueError:
        return {"invalid_json": text}


def render(outcome) -> dict:
    if isinstance(outcome, DecodeError):
        return {"error": str(outcome)}
    c = outcome
    return {
        "row": {
            "table": c.table,
            "key": c.key,
            "operation": c.operation,
            "order": {"micros": _number(str(c.micros)), "tiebreak": c.tiebreak},
            "event_name": c.event_name,
            "event_id": c.event_id,
            "new_image": parse_image(c.new_image),
            "old_image": parse_image(c.old_image),
            "error": None,
            "extra": {},
        }
    }


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DecodeError as e:
        return e


def case_records(path: str):
    """(sequence, payload) per non-blank line; the host numbers records by
    their line in the file (``enumerate`` before the blank-line filter)."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, line in enumerate(lines):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            yield str(i + 1), line


def case_names() -> list[str]:
    """The cases' names, in the order of their files' names."""
    return [f[: -len(".in.jsonl")] for f in sorted(os.listdir(CASES)) if f.endswith(".in.jsonl")]


def all_case_records() -> list[bytes]:
    """Every case's records, case after case."""
    return [p for name in case_names() for _, p in case_records(os.path.join(CASES, f"{name}.in.jsonl"))]


_CASE_FIELDS = {"table", "target", "keys", "settings", "export", "fetch"}


def case_decoder(name: str):
    """How the host feeds case ``name`` to the guest (``<name>.toml``, see
    ``CaseConfig`` in host/src/guest/cases.rs): a function of (payload,
    sequence), and the export settings for ``compare_paths`` (or ``None``)."""
    path = os.path.join(CASES, f"{name}.toml")
    config = {}
    if os.path.exists(path):
        import tomllib

        with open(path, "rb") as f:
            config = tomllib.load(f)
    unknown = set(config) - _CASE_FIELDS
    if unknown:
        raise ValueError(f"{name}.toml: unknown fields {sorted(unknown)}")
    if config.get("settings"):
        raise ValueError(f"{name}.toml: ddb-json has no settings, but was given {sorted(config['settings'])}")
    export = config.get("export")
    if export is None:
        return decode_stream_change, None
    unknown = set(export) - {"time_micros", "incremental"}
    if unknown:
        raise ValueError(f"{name}.toml: unknown export fields {sorted(unknown)}")
    info = dict(table=config.get("table", name), keys=list(config.get("keys", [])),
                micros=export["time_micros"], incremental=bool(export.get("incremental", False)))
    return public_decoder(info), info


def public_decoder(export: dict | None):
    """The public function for stream records (``export`` None) or for export
    lines with these settings, as a function of (payload, sequence)."""
    if export is None:
        return decode_stream_change

    def decode_line(payload, sequence):
        return decode_export_line(payload, sequence, table=export["table"], keys=export["keys"],
                                  export_time_micros=export["micros"], incremental=export["incremental"])

    return decode_line


def paths(export: dict | None):
    """The exact port, the fast path, and the arguments both take after the
    payload, for stream records (``export`` None) or export lines."""
    if export is None:
        return ddb._x_stream, ddb._f_stream, ()
    return ddb._x_export, ddb._f_export, (export["table"], export["keys"], export["micros"], export["incremental"])


def difference(want: dict, got: dict) -> str:
    """The fields in which two rendered outcomes differ, one per line."""
    if "row" not in got:
        return f"  expected a row, got {got}"
    lines = []
    for field in sorted(set(want["row"]) | set(got["row"])):
        w, g = want["row"].get(field), got["row"].get(field)
        if w != g:
            lines.append(f"  {field}:\n    expected {w!r}\n    actual   {g!r}")
    return "\n".join(lines)


def run_cases(verbose: bool = False) -> bool:
    names = case_names()
    totals = dict(records=0, rows=0, rows_ok=0, errors=0, errors_ok=0, same_message=0, fast=0)
    failures, wording = [], []
    for name in names:
        records = list(case_records(os.path.join(CASES, f"{name}.in.jsonl")))
        try:
            decode_case, export = case_decoder(name)
        except (ValueError, KeyError) as e:
            failures.append(f"{name}: {e}")
            continue
        with open(os.path.join(CASES, f"{name}.out.jsonl"), encoding="utf-8") as f:
            expected = [document(line) for line in f.read().split("\n") if line.strip()]
        if len(expected) != len(records):
            failures.append(f"{name}: {len(records)} records but {len(expected)} expected outcomes")
            continue
        passed = 0
        for (sequence, payload), want in zip(records, expected):
            try:
                got = render(outcome(decode_case, payload, sequence))
            except Exception as e:  # a crash is a failure, reported with the rest
                got = {"crash": f"{type(e).__name__}: {e}"}
            totals["records"] += 1
            where = f"{name} record {sequence}"
            if "row" in want:
                totals["rows"] += 1
                if got == want:
                    totals["rows_ok"] += 1
                    passed += 1
                else:
                    failures.append(f"{where}:\n" + difference(want, got))
            elif "error" in want:
                totals["errors"] += 1
                if "error" in got:
                    totals["errors_ok"] += 1
                    passed += 1
                    if got["error"] == want["error"]:
                        totals["same_message"] += 1
                    else:
                        wording.append(f"{where}:\n  Rust   {want['error']}\n  Python {got['error']}")
                else:
                    failures.append(f"{where}: expected an error ({want['error']}), got {got}")
            else:
                failures.append(f"{where}: expected {want}, which ddb-json never gives")
            # The two paths agree, and report whether the fast one was taken.
            try:
                problem, fast = compare_paths(payload, export)
            except Exception as e:
                problem, fast = f"crash comparing the paths: {type(e).__name__}: {e}", False
            totals["fast"] += fast
            if problem:
                failures.append(f"{where}: {problem}")
        if verbose:
            print(f"  {name}: {passed}/{len(records)}")
    print(
        f"golden cases: {len(names)} files, {totals['records']} records: "
        f"{totals['rows_ok']}/{totals['rows']} rows equal, "
        f"{totals['errors_ok']}/{totals['errors']} errors are errors "
        f"({totals['same_message']} with the same message, byte for byte); "
        f"{totals['fast']} records decoded by the fast path"
    )
    for w in wording:
        print("error wording differs (for information):\n" + w)
    for f in failures:
        print("FAIL " + f)
    return not failures


def same_change(a: Change, b: Change, payload: bytes) -> str | None:
    """Whether two decodings of ``payload`` agree: every field equal, images
    as text when the record has no escapes, else as JSON values."""
    for field in ("table", "key", "operation", "micros", "tiebreak", "event_name", "event_id"):
        if getattr(a, field) != getattr(b, field):
            return f"{field}: {getattr(a, field)!r} != {getattr(b, field)!r}"
    for field in ("new_image", "old_image"):
        x, y = getattr(a, field), getattr(b, field)
        if b"\\" not in payload:
            if x != y:
                return f"{field}: {x!r} != {y!r}"
        elif parse_image(x) != parse_image(y):
            return f"{field}: {x!r} != {y!r}"
        if x is not None and y is not None and list(parse_image(x)) != list(parse_image(y)):
            return f"{field}: member order differs"
    return None


def compare_paths(payload: bytes, export: dict | None = None) -> tuple[str | None, bool]:
    """Decodes ``payload`` with the exact port and with the fast path."""
    exact_fn, fast_fn, args = paths(export)
    exact = outcome(exact_fn, payload, *args)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return (None if isinstance(exact, DecodeError) else "exact path accepted invalid UTF-8"), False
    if ddb._needs_exact(text):
        return None, False
    try:
        fast = fast_fn(text, *args)
    except ddb._Slow:
        return None, False
    except (ValueError, RecursionError):
        return None, False  # json.loads refused it; the exact path decides
    if isinstance(exact, DecodeError):
        return f"the fast path accepted what the exact path refuses ({exact})", True
    return same_change(fast, exact, payload), True


# ---------------------------------------------------------------------------
# Fuzzing: mutated records, public API against the exact port
# ---------------------------------------------------------------------------

_PIECES = [
    '"', "\\", "{", "}", "[", "]", ",", ":", " ", "\t", "\n", "0", "1", "-", "+", ".", "e", "E",
    "\\u00e9", "\\ud83d", "\\ude00", "\\ud83d\\ude00", "\\u0053", "\\u004e", "\\/", '\\"', "\\\\",
    '"S"', '"N"', '"B"', '"M"', '"L"', '"SS"', '"NS"', '"BS"', '"NULL"', '"BOOL"',
    '{"N":"1"}', '{"N":"1.0"}', '{"S":""}', '{"B":"AA=="}', '{"SS":[]}', '{"NS":["1","1E0"]}',
    "null", "true", "false", "é", "\x01", "\x7f", "1E+126", "NaN", "Infinity", '"MICROSECOND"',
    '"REMOVE"', '"userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"},',
    "[" * 70, "]" * 70, '{"L":[' * 66, "]}" * 66, '"a":1,', '"a":{"x":1,"x":2},',
]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(text) + 1)
        j = min(len(text), i + rng.randint(0, 12))
        roll = rng.random()
        if roll < 0.3:
            text = text[:i] + text[j:]
        elif roll < 0.7:
            text = text[:i] + rng.choice(_PIECES) + text[i:]
        elif roll < 0.85:
            text = text[:i] + text[i:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + rng.choice(_PIECES) + text[j:]
    return text


def agree(public, exact, payload: bytes) -> str | None:
    if isinstance(exact, DecodeError) or isinstance(public, DecodeError):
        if not (isinstance(exact, DecodeError) and isinstance(public, DecodeError)):
            return f"public {render(public)} but exact {render(exact)}"
        if str(exact) != str(public):
            return f"messages differ: {public} / {exact}"
        return None
    exact.tiebreak = public.tiebreak
    return same_change(public, exact, payload)


_EXPORT_LINES = [
    (False, '{"Item":{"qty":{"N":"2.50"},"pk":{"S":"a"},"sk":{"N":"1"},"tags":{"SS":["x","y"]},"m":{"M":{"l":{"L":[{"NULL":true},{"B":"AAE="}]}}}}}'),
    (False, '{"Item":{"pk":{"S":"caf\\u00e9"},"sk":{"N":"1.50E1"},"bs":{"BS":["AA==","AQ=="]},"ns":{"NS":["1","2"]}}}'),
    (True, '{"Metadata":{"WriteTimestampMicros":{"N":"1680109764000000"}},"Keys":{"pk":{"S":"a"},"sk":{"N":"150E-1"}},"NewImage":{"pk":{"S":"a"},"sk":{"N":"15"},"v":{"BOOL":true}},"OldImage":{"pk":{"S":"a"}}}'),
    (True, '{"Metadata":{"WriteTimestampMicros":"6"},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}}}'),
    (True, '{"Metadata":{"WriteTimestampMicros":7},"Keys":{"pk":{"B":"AAE="}},"NewImage":{"pk":{"B":"AAE="}}}'),
]


_NUMBERS = ["0", "-0", "1", "1.0", "1E0", "10E-1", "+1", "007.10", ".5", "5.", "-1.5e+10", "1E-130", "1E-131",
            "9.9999999999999999999999999999999999999E+125", "1E+126", "1" * 38, "1" * 39, "1" + "0" * 50, "0.000",
            "", "-", "1e", "1,5", " 1", "١", "NaN", "2.90E1", "29", "1e0000000000000000000000001"]
_STRINGS = ["", "a", "é", "😀", 'q"q', "b\\s", "line\nbreak", "\x00\x1f\x7f", "\u2028", "AA==", "AAE=", "AB==",
            "S", "N", "MICROSECOND", "1", "+1", "dynamodb.amazonaws.com", "Service", "ä" * 3]
_TAGS = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS", "Q", "s"]


def _random_attr(rng: random.Random, depth: int = 0):
    tag = rng.choice(_TAGS if rng.random() < 0.1 else _TAGS[:10])
    if tag in ("S", "B", "Q", "s"):
        return {tag: rng.choice(_STRINGS)}
    if tag == "N":
        return {"N": rng.choice(_NUMBERS)}
    if tag == "BOOL":
        return {"BOOL": rng.choice([True, False, None, "true"])}
    if tag == "NULL":
        return {"NULL": rng.choice([True, True, False])}
    if tag in ("M", "L"):
        if depth > 3 or rng.random() < 0.3:
            return {tag: {} if tag == "M" else []}
        items = [_random_attr(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        if tag == "L":
            return {"L": items}
        return {"M": {rng.choice(_STRINGS) + str(i): a for i, a in enumerate(items)}}
    pool = {"SS": _STRINGS, "NS": _NUMBERS[:12], "BS": ["AA==", "AQ==", "AAE=", "", "AB=="]}[tag]
    return {tag: [rng.choice(pool) for _ in range(rng.randint(0, 4))]}


def _mutate_tree(rng: random.Random, v, depth: int = 0):
    """Replaces a few attribute values of a parsed record with random ones."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if len(v) == 1 and k in _TAGS and rng.random() < 0.15:
                return _random_attr(rng)
            out[k] = _mutate_tree(rng, x, depth + 1) if rng.random() < 0.96 else _random_attr(rng)
        if rng.random() < 0.05 and out:
            out.pop(rng.choice(list(out)))
        return out
    if isinstance(v, list):
        return [_mutate_tree(rng, x, depth + 1) for x in v]
    return v


def _serialize(rng: random.Random, v) -> str:
    text = json.dumps(v, ensure_ascii=rng.random() < 0.3, separators=rng.choice([(",", ":"), (", ", ": "), (" ,", " : ")]))
    if rng.random() < 0.1:  # a repeated member name somewhere
        m = re.search(r'"([A-Za-z]+)":', text)
        if m:
            text = text.replace(m.group(0), m.group(0) + '"x",' + m.group(0), 1) if rng.random() < 0.5 else text
    return text


def fuzz_export(rng: random.Random) -> tuple[str, dict]:
    """One of the export lines to mutate, and its settings."""
    incremental, line = rng.choice(_EXPORT_LINES)
    return line, dict(table="t", keys=["sk", "pk"], micros=7, incremental=incremental)


def fuzz(iterations: int, seed: int, make, summary: str) -> bool:
    """Decodes the inputs ``make(rng, n)`` gives, each a payload and the export
    settings (``None`` for a stream record), with the public function, the
    exact port and the fast path, which must agree; prints ``summary``."""
    rng = random.Random(seed)
    failures, refused, fast = [], 0, 0
    for n in range(iterations):
        payload, export = make(rng, n)
        exact_fn, _, args = paths(export)
        public = outcome(public_decoder(export), payload, "9")
        exact = outcome(exact_fn, payload, *args)
        refused += isinstance(public, DecodeError)
        try:
            problem = agree(public, exact, payload)
            if problem is None:
                problem, took_fast = compare_paths(payload, export)
                fast += took_fast
        except Exception as e:
            problem = f"crash: {type(e).__name__}: {e}"
        if problem:
            failures.append(f"{payload!r}\n  {problem}")
    print(summary.format(iterations=iterations, refused=refused, rows=iterations - refused, fast=fast,
                         failures=len(failures)))
    for f in failures[:20]:
        print("FAIL fuzz " + f)
    return not failures


def run_structural_fuzz(iterations: int = 3000, seed: int = 7) -> bool:
    records = []
    for p in all_case_records():
        try:
            records.append(json.loads(p))
        except ValueError:
            pass

    def make(rng, n):
        if n % 3 == 2:
            line, export = fuzz_export(rng)
            tree = json.loads(line)
        else:
            tree, export = rng.choice(records), None
        return _serialize(rng, _mutate_tree(rng, tree)).encode("utf-8", "surrogatepass"), export

    return fuzz(iterations, seed, make, "structural fuzz: {iterations} records and export lines with random values, "
                "{rows} decoded to rows, {fast} accepted by the fast path; {failures} disagreements")


def run_fuzz(iterations: int = 4000, seed: int = 20240601) -> bool:
    stream = [s for s in (p.decode("utf-8") for p in all_case_records()) if len(s) < 3000]

    def make(rng, n):
        line, export = fuzz_export(rng) if n % 4 == 3 else (rng.choice(stream), None)
        return mutate(rng, line).encode("utf-8", "surrogatepass"), export

    return fuzz(iterations, seed, make, "fuzz: {iterations} mutated records and export lines, {refused} refused, "
                "{fast} accepted by the fast path; {failures} disagreements")


# ---------------------------------------------------------------------------
# Unit tests
# ---------------------------------------------------------------------------


def record(members: str = '"tableName":"t",', inside: str = "", keys='{"id":{"S":"a"}}', image='{"id":{"S":"a"}}', event="INSERT") -> bytes:
    """stream.rs tests' record(): `members` at the top level, `inside` in `dynamodb`."""
    new = f',"NewImage":{image}' if image is not None else ""
    return (
        f'{{"eventID":"e","eventName":"{event}",{members}"dynamodb":{{"ApproximateCreationDateTime":1,'
        f'{inside}"Keys":{keys}{new}}}}}'
    ).encode()


def decode(payload) -> Change:
    if isinstance(payload, str):
        payload = payload.encode()
    return decode_stream_change(payload, "1")


def error_of(fn, *args, **kwargs) -> str:
    try:
        fn(*args, **kwargs)
    except DecodeError as e:
        return str(e)
    raise AssertionError(f"no error for {args!r}")


def value(ddb_text: str) -> str:
    """attr.rs tests' plain(): one attribute value to plain JSON, by both paths."""
    payload = ddb_text.encode()
    s = ddb._Scanner(payload)
    out: list = []
    try:
        ddb._x_value(s, out, 0)
        s.end()
    except DecodeError as e:
        exact = e
    else:
        exact = "".join(out)
    try:
        fast = ddb._f_value(ddb._loads_record(ddb_text), 0)
    except (ddb._Slow, ValueError, RecursionError):
        fast = None
    if isinstance(exact, DecodeError):
        if fast is not None and not ddb._needs_exact(ddb_text):
            raise AssertionError(f"fast path accepted {ddb_text}: {fast}")
        raise exact
    if fast is not None and "\\" not in ddb_text:
        assert fast == exact, (ddb_text, fast, exact)
    return exact


def keys_of(keys_text: str) -> str:
    """key.rs tests' key(): a Keys object to its canonical key, by both paths."""
    s = ddb._Scanner(keys_text.encode())
    exact = ddb._x_keys(s)  # raises DecodeError
    if not ddb._needs_exact(keys_text):
        try:
            fast = ddb._f_keys(ddb._loads_record(keys_text))
        except ddb._Slow:
            pass
        else:
            assert fast == exact, (keys_text, fast, exact)
    return exact


def json_number(text: str) -> str:
    return ddb._json_spelling(ddb._parse_number(text))


def canonical(text: str) -> str:
    return ddb._canonical_spelling(ddb._parse_number(text))


def or_none(spell, text: str) -> str | None:
    """``spell(text)``, or ``None`` if ``text`` is not a DynamoDB number."""
    try:
        return spell(text)
    except ddb._Invalid:
        return None


class Numbers(unittest.TestCase):
    """number.rs"""

    def test_keeps_digits_and_fixes_spelling(self):
        for text, want in [
            ("4395", "4395"),
            ("-12.50", "-12.50"),
            ("+7", "7"),
            ("007", "7"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1E-130", "1E-130"),
            ("9.9999999999999999999999999999999999999E+125", "9.9999999999999999999999999999999999999E+125"),
            ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
            ("0." + "0" * 36 + "12345678901234567890123456789012345678", "0." + "0" * 36 + "12345678901234567890123456789012345678"),
            ("1" + "0" * 42, "1" + "0" * 42),
            ("0", "0"),
            ("-0.000", "-0"),
            ("00.0e5", "0"),
        ]:
            self.assertEqual(json_number(text), want, text)
            self.assertEqual(ddb._n_json(text), want, text)

    def test_shortcuts_agree_with_the_general_rule(self):
        rng = random.Random(5)
        texts = ["0", "-0", "0.0", "0.5", "-0.5", "00.5", "10.50", "1" * 37, "1" * 38, "1" * 39, "0." + "0" * 35 + "1",
                 "-" + "9" * 37, "9" * 36 + ".5", "1.", ".5", "+1", "1e5"]
        for _ in range(20000):
            texts.append("".join(rng.choice("-+0123456789.eE") for _ in range(rng.randint(1, 8))))
            texts.append(rng.choice(["", "-"]) + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 45)))
                         + rng.choice(["", "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 40)))]))
        for text in texts:
            self.assertEqual(or_none(ddb._n_json, text), or_none(json_number, text), text)
            if ddb._PLAIN_INTEGER.fullmatch(text):
                self.assertEqual((json_number(text), canonical(text)), (text, text))
            self.assertEqual(or_none(ddb._n_canonical, text), or_none(canonical, text), text)

    def test_rejects_what_dynamodb_rejects(self):
        for bad in ["", "-", ".", "1e", "1e+", "abc", "1.2.3", "1,5", " 1", "0x10", "NaN", "Infinity",
                    "123456789012345678901234567890123456789", "1E+126", "10E+125", "1E-131", "0.1E-130",
                    "1e99999999999999999999", "1e" + "9" * 5000, "١", "1\n"]:
            with self.assertRaises(ddb._Invalid, msg=repr(bad)):
                ddb._parse_number(bad)

    def test_reasons_are_ddb_cores(self):
        for text, why in [("", "no digits"), ("-", "no digits"), (".e5", "no digits"), ("1e", "no digits in exponent"),
                          ("1e+", "no digits in exponent"), ("1.2.3", "unexpected character"), ("12,50", "unexpected character"),
                          ("two", "no digits"), ("1E+126", "larger than 9.9999999999999999999999999999999999999E+125"),
                          ("1E-131", "smaller than 1E-130"), ("1" * 39, "more than 38 significant digits")]:
            with self.assertRaises(ddb._Invalid) as e:
                ddb._parse_number(text)
            self.assertEqual(e.exception.args[0], why, text)

    def test_one_canonical_spelling_per_value(self):
        for spellings, want in [
            (["1", "1.0", "1E0", "10E-1", "+1", "001", "1.", "0.1e1", "100e-2"], "1"),
            (["0", "-0", "0.0", "-0.000", "0E5", ".0", "00"], "0"),
            (["150", "1.5E2", "1.5e+2", "15E1", "150.00"], "150"),
            (["-0.5", "-.5", "-5E-1", "-0.50"], "-0.5"),
            (["0.05", "5e-2", "0.050"], "0.05"),
            (["123.456", "1.23456E2", "123456e-3"], "123.456"),
            (["1E+125", "10E124"], "1" + "0" * 125),
            (["1E-130", "0.1E-129"], "0." + "0" * 129 + "1"),
            (["-9.9999999999999999999999999999999999999E+125"], "-" + "9" * 38 + "0" * 88),
            (["1.2345678901234567890123456789012345678E-100"], "0." + "0" * 99 + "12345678901234567890123456789012345678"),
        ]:
            for text in spellings:
                self.assertEqual(canonical(text), want, text)
                self.assertEqual(canonical_number(text), want, text)
        with self.assertRaises(ValueError):
            canonical_number("1E+126")

    def test_numbers_in_images_keep_their_digits(self):
        c = decode(record(image='{"id":{"S":"a"},"p":{"N":"2.50"},"e":{"N":"1.5e+10"},"z":{"N":"-0"},"l":{"N":"+007.10"}}'))
        self.assertEqual(c.new_image, '{"id":"a","p":2.50,"e":1.5e+10,"z":-0,"l":7.10}')


class Values(unittest.TestCase):
    """attr.rs and scan.rs"""

    def test_every_type(self):
        for ddb_text, want in [
            ('{"S":"hi \\"there\\""}', '"hi \\"there\\""'),
            ('{"S":""}', '""'),
            ('{"N":"-1.50"}', "-1.50"),
            ('{"B":"AAEC/w=="}', '"AAEC/w=="'),
            ('{"BOOL":false}', "false"),
            ('{"NULL":true}', "null"),
            ('{"M":{}}', "{}"),
            ('{"M":{"a":{"N":"1"},"b":{"L":[]}}}', '{"a":1,"b":[]}'),
            ('{"L":[{"S":"x"},{"N":"2"},{"NULL":true}]}', '["x",2,null]'),
            ('{"SS":["a","b"]}', '["a","b"]'),
            ('{"NS":["1","2.5","1E-130"]}', "[1,2.5,1E-130]"),
            ('{"BS":["AA==","AQ=="]}', '["AA==","AQ=="]'),
            (' { "S" : "spaced" } ', '"spaced"'),
        ]:
            self.assertEqual(value(ddb_text), want, ddb_text)

    def test_rejects_malformed_values_with_a_path(self):
        for ddb_text, why in [
            ('{"X":"1"}', "unknown attribute type"),
            ("{}", "needs a type"),
            ('{"S":"a","N":"1"}', "exactly one type"),
            ('{"N":"one"}', "invalid number"),
            ('{"NULL":false}', "NULL must be true"),
            ('{"B":"abc"}', "invalid base64"),
            ('{"S":1}', "expected '\"'"),
            ('{"M":{"a":{"L":[{"N":"x"}]}}}', "a[0]: invalid number"),
            ('{"\\u0053":"x"}', 'unknown attribute type "\\\\u0053"'),
            ('{"B":"AA\\u003d\\u003d"}', "invalid base64"),  # read as written: 14 bytes
            ('{"B":"AA\\u003d"}', "character outside the base64 alphabet"),  # 8 bytes as written
            ('{"BOOL":null}', "expected true or false"),
        ]:
            self.assertIn(why, error_of(value, ddb_text), ddb_text)

    def test_a_map_names_each_attribute_once(self):
        self.assertEqual(error_of(value, '{"M":{"a":{"N":"1"},"b":{"N":"2"},"a":{"N":"3"}}}'),
                         'duplicate member name "a" (at byte 34)')
        self.assertEqual(error_of(value, '{"L":[{"M":{"x":{"M":{"a\\u00e9":{"N":"1"},"aé":{"N":"2"}}}}}]}'),
                         '[0].x: duplicate member name "aé" (at byte 42)')

        def many(repeat):
            names = ",".join(f'"n{i}":{{"NULL":true}}' for i in range(40))
            return f'{{"M":{{{names},"n{repeat}":{{"S":"again"}}}}}}'

        for repeat in (0, 15, 16, 39):
            self.assertIn(f'duplicate member name "n{repeat}"', error_of(value, many(repeat)))
        value(many(40))
        self.assertEqual(value('{"M":{"a":{"S":"x"},"A":{"S":"y"}}}'), '{"a":"x","A":"y"}')
        self.assertIn("exactly one type", error_of(value, '{"S":"a","S":"b"}'))

    def test_sets_are_non_empty(self):
        for tag in ("SS", "NS", "BS"):
            self.assertEqual(error_of(value, f'{{"{tag}":[]}}'),
                             f"empty {tag} set (DynamoDB sets are non-empty) (at byte {len(tag) + 4})")
        self.assertIn("empty SS set", error_of(value, '{"SS":[ ]}'))

    def test_set_elements_are_distinct_values(self):
        for ddb_text, why in [
            ('{"SS":["a","b","a"]}', '[2]: duplicate SS element "a" (at byte 15)'),
            ('{"SS":["é","\\u00e9"]}', '[1]: duplicate SS element "\\u00e9"'),
            ('{"NS":["1","1.0"]}', '[1]: duplicate NS element "1.0" (numbers are compared by value)'),
            ('{"NS":["1E0","10E-1"]}', '[1]: duplicate NS element "10E-1"'),
            ('{"NS":["-0","0"]}', '[1]: duplicate NS element "0"'),
            ('{"NS":["0.5",".50"]}', '[1]: duplicate NS element ".50"'),
            ('{"NS":["7","\\u0037"]}', '[1]: duplicate NS element "\\u0037"'),
            ('{"BS":["AAE=","AQI=","AAE="]}', '[2]: duplicate BS element "AAE="'),
        ]:
            err = error_of(value, ddb_text)
            self.assertTrue(err.startswith(why), f"{ddb_text}: {err}")
        for ddb_text in ('{"SS":["a","A","a "]}', '{"NS":["1","-1","10","0.1","1E-130","1E+125"]}', '{"BS":["AA==","AAA=","AAAA"]}'):
            value(ddb_text)
        numbers = ",".join(f'"{i}"' for i in range(30))
        value(f'{{"NS":[{numbers},"30"]}}')
        self.assertTrue(error_of(value, f'{{"NS":[{numbers},"2.90E1"]}}').startswith('[30]: duplicate NS element "2.90E1"'))

    def test_base64_is_canonical(self):
        for good in ["", "AA==", "AQ==", "AAE=", "AAEC", "/w==", "+/8="]:
            self.assertIsNone(ddb._base64_problem(good), good)
            self.assertTrue(ddb._base64_ok(good), good)
        for bad, why in [("AB==", "padding bits"), ("A/==", "padding bits"), ("AAF=", "padding bits"),
                         ("AA/=", "padding bits"), ("A===", "alphabet"), ("AA=A", "alphabet"),
                         ("AAA", "multiple of 4"), ("AAé", "alphabet"), ("Aé", "multiple of 4")]:  # bytes, as Rust counts
            self.assertIn(why, ddb._base64_problem(bad), bad)
            self.assertFalse(ddb._base64_ok(bad), bad)
        self.assertIn("not canonical base64", error_of(value, '{"B":"AB=="}'))

    def test_depth_is_bounded(self):
        def deep(n):
            return '{"L":[' * n + '{"NULL":true}' + "]}" * n
        value(deep(40))
        value(deep(64))
        self.assertIn("nested deeper than 64 levels", error_of(value, deep(65)))
        with self.assertRaises(DecodeError):
            value(deep(100))
        with self.assertRaises(DecodeError):
            value(deep(5000))  # beyond json.loads' recursion limit: still a DecodeError

    def test_strings_are_validated(self):
        def raw(text):
            return ddb._Scanner(text.encode()).string().text()
        self.assertEqual(raw('"plain"'), "plain")
        self.assertEqual(raw('"a\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00"'), 'a\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00')
        for bad in ['"tab\there"', '"\\x"', '"\\u12"', '"\\ud83d"', '"\\ude00"', '"open']:
            with self.assertRaises(DecodeError, msg=bad):
                raw(bad)

    def test_canonical_escapes_are_write_escaped(self):
        text = "".join(chr(i) for i in range(0x80)) + "é😀\u2028"
        want = ['"']
        for c in text:
            want.append({'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}.get(
                c, "\\u%04x" % ord(c) if ord(c) < 0x20 else c))
        want.append('"')
        self.assertEqual(ddb._quote(text), "".join(want))

    def test_json_number_grammar(self):
        for good in ["0", "-0", "12", "-3.25", "1e5", "1E-130", "2.5e+10"]:
            self.assertEqual(ddb._Scanner(good.encode()).number(), good)
        for bad in ["+1", ".5", "-", "1.", "1e", "--1"]:
            s = ddb._Scanner(bad.encode())
            with self.assertRaises(DecodeError, msg=bad):
                s.number()
                s.end()


class Keys(unittest.TestCase):
    """key.rs"""

    def test_sorted_compact_and_order_independent(self):
        a = keys_of('{"sk":{"N":"10"},"pk":{"S":"user#1"}}')
        b = keys_of('{ "pk" : {"S":"user#1"}, "sk" : {"N":"10"} }')
        self.assertEqual(a, '{"pk":"user#1","sk":10}')
        self.assertEqual(a, b)

    def test_sorted_by_utf8_bytes(self):
        self.assertEqual(keys_of('{"é":{"S":"1"},"Z":{"S":"2"},"a":{"S":"3"},"😀":{"S":"4"},"\uffff":{"S":"5"}}'),
                         '{"Z":"2","a":"3","é":"1","\uffff":"5","😀":"4"}')

    def test_strings_are_spelled_one_way(self):
        escaped = keys_of('{"id":{"S":"caf\\u00e9 \\/ \\"q\\""}}')
        literal = keys_of('{"id":{"S":"café / \\"q\\""}}')
        self.assertEqual(escaped, literal)
        self.assertEqual(literal, '{"id":"café / \\"q\\""}')
        self.assertEqual(decode(record(keys='{"i\\u0064":{"S":"caf\\u00e9\\n"}}')).key, '{"id":"café\\n"}')

    def test_binary_keys_stay_base64(self):
        self.assertEqual(keys_of('{"b":{"B":"AAE="}}'), '{"b":"AAE="}')

    def test_numbers_are_spelled_as_dynamodb_spells_them(self):
        for spellings, want in [
            (["1", "1.0", "1E0", "10E-1", "+1", "01", "1.", "\\u0031"], '{"n":1}'),
            (["0", "-0", "0.00", "0E+7"], '{"n":0}'),
            (["-150", "-1.5E2", "-150.0"], '{"n":-150}'),
            (["0.25", ".25", "25E-2", "0.250"], '{"n":0.25}'),
        ]:
            for n in spellings:
                self.assertEqual(keys_of(f'{{"n":{{"N":"{n}"}}}}'), want, n)
        self.assertEqual(keys_of('{"n":{"N":"1E+3"}}'), '{"n":1000}')
        self.assertEqual(keys_of('{"n":{"N":"1E-3"}}'), '{"n":0.001}')
        self.assertIn("invalid number", error_of(keys_of, '{"n":{"N":"1E+126"}}'))

    def test_rejects_bad_keys(self):
        for keys_text, why in [
            ("{}", "Keys has no attributes (at byte 2)"),
            ('{"a":{"M":{}}}', 'a: a key attribute must be S, N or B, not "M" (at byte 10)'),
            ('{"a":{"S":"x"},"\\u0061":{"S":"y"}}', 'duplicate member name "a" (at byte 15)'),
            ('{"a":{"S":""}}', "a: an empty string cannot be a key value (at byte 10)"),
            ('{"a":{"B":""}}', "a: an empty binary cannot be a key value (at byte 10)"),
            ('{"a":{"B":"AB=="}}', "a: invalid base64 in binary value: non-zero padding bits (not canonical base64) (at byte 10)"),
            ('{"a":{"BOOL":true}}', 'a: a key attribute must be S, N or B, not "BOOL"'),
            ('{"a":{"S":"x","S":"y"}}', "a: an attribute value must have exactly one type"),
        ]:
            err = error_of(keys_of, keys_text)
            self.assertTrue(err.startswith(why), f"{keys_text}: {err}")

    def test_canonical_key_of_parsed_keys(self):
        self.assertEqual(canonical_key({"sk": {"N": "1.50E1"}, "pk": {"S": 'a"b'}, "b": {"B": "AAE="}}),
                         '{"b":"AAE=","pk":"a\\"b","sk":15}')
        for keys, why in [({}, "no attributes"), ({"a": {"S": ""}}, "a: an empty string"),
                          ({"a": {"B": ""}}, "a: an empty binary"), ({"a": {"M": {}}}, "must be S, N or B"),
                          ({"a": {"N": "x"}}, "a: invalid number")]:
            self.assertIn(why, error_of(canonical_key, keys))


class Stream(unittest.TestCase):
    """stream.rs, lib.rs and rows.rs"""

    def test_the_doc_example(self):
        c = decode(b'{"eventID":"e1","eventName":"INSERT","tableName":"orders",\n  "dynamodb":{"ApproximateCreationDateTime":1684189640771,\n  "Keys":{"id":{"S":"a"}},"NewImage":{"id":{"S":"a"},"qty":{"N":"2"}}}}')
        self.assertEqual(c.key, '{"id":"a"}')
        self.assertEqual(c.new_image, '{"id":"a","qty":2}')
        self.assertEqual(c.micros, 1_684_189_640_771_000)
        self.assertEqual((c.operation, c.event_name, c.event_id, c.table, c.tiebreak, c.old_image),
                         ("upsert", "INSERT", "e1", "orders", "1", None))

    def test_precision_is_milliseconds_unless_the_record_says_microseconds(self):
        self.assertEqual(decode(record()).micros, 1000)
        self.assertEqual(decode(record(inside='"ApproximateCreationDateTimePrecision":"MILLISECOND",')).micros, 1000)
        self.assertEqual(decode(record(inside='"ApproximateCreationDateTimePrecision":"MICROSECOND",')).micros, 1)
        # Compared as written, as ddb-core does: an escaped spelling is refused.
        self.assertIn("is not MILLISECOND or MICROSECOND",
                      error_of(decode, record(inside='"ApproximateCreationDateTimePrecision":"MICRO\\u0053ECOND",')))

    def test_a_member_twice_is_refused_at_every_level(self):
        for members, inside, why in [
            ('"tableName":"a","tableName":"b",', "", 'duplicate member name "tableName"'),
            ('"tableName":"a","table\\u004eame":"a",', "", 'duplicate member name "tableName"'),
            ('"tableName":"a","awsRegion":"x","awsRegion":"x",', "", 'duplicate member name "awsRegion"'),
            ('"tableName":"a","eventID":"e",', "", 'duplicate member name "eventID"'),
            ('"tableName":"a","dynamodb":{},', "", 'duplicate member name "dynamodb"'),
            ('"tableName":"a","userIdentity":null,"userIdentity":null,', "", 'duplicate member name "userIdentity"'),
            ('"tableName":"a","userIdentity":{"type":"Service","type":"User"},', "", 'userIdentity: duplicate member name "type"'),
            ('"tableName":"a",', '"Keys":{"id":{"S":"a"}},', 'dynamodb: duplicate member name "Keys"'),
            ('"tableName":"a",', '"SizeBytes":1,"SizeBytes":1,', 'dynamodb: duplicate member name "SizeBytes"'),
            ('"tableName":"a",', '"ApproximateCreationDateTime":2,', 'dynamodb: duplicate member name "ApproximateCreationDateTime"'),
            ('"tableName":"a",', '"OldImage":{"id":{"S":"a"},"id":{"S":"b"}},', 'dynamodb.OldImage: duplicate member name "id"'),
        ]:
            err = error_of(decode, record(members, inside))
            self.assertTrue(err.startswith(why), f"{members} {inside}: {err}")

    def test_repeats_inside_skipped_values_are_not_checked(self):
        # ddb-core skips unknown members without looking for repeated names.
        c = decode(record('"tableName":"t","awsRegion":{"a":1,"a":2},', '"StreamViewType":{"x":[],"x":{}},'))
        self.assertEqual(c.table, "t")

    def test_member_names_are_read_unescaped(self):
        escaped = record('"table\\u004eame":"orders","user\\u0049dentity":null,', "")
        c = decode(escaped.replace(b"NewImage", b"New\\u0049mage"))
        self.assertEqual((c.table, c.new_image), ("orders", '{"id":"a"}'))

    def test_operations(self):
        self.assertEqual(decode(record(event="MODIFY")).operation, "upsert")
        removed = decode(record(event="REMOVE", image=None))
        self.assertEqual((removed.operation, removed.new_image, removed.event_name), ("delete", None, "REMOVE"))
        ttl = decode(record('"tableName":"t","userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"},', event="REMOVE", image=None))
        self.assertEqual(ttl.operation, "ttl-delete")
        user = decode(record('"tableName":"t","userIdentity":{"type":"User","principalId":"dynamodb.amazonaws.com"},', event="REMOVE", image=None))
        self.assertEqual(user.operation, "delete")
        self.assertIn("the record has no dynamodb.NewImage, which an MODIFY needs", error_of(decode, record(event="MODIFY", image=None)))
        self.assertIn('eventName "UPSERT" is not INSERT, MODIFY or REMOVE', error_of(decode, record(event="UPSERT")))

    def test_missing_fields(self):
        self.assertEqual(error_of(decode, record(members="")), "the record has no tableName")
        self.assertEqual(error_of(decode, b'{"eventName":"REMOVE","tableName":"t","dynamodb":{"ApproximateCreationDateTime":1}}'),
                         "the record has no dynamodb.Keys")
        self.assertEqual(error_of(decode, b'{"eventName":"REMOVE","tableName":"t","dynamodb":{"Keys":{"id":{"S":"a"}}}}'),
                         "the record has no dynamodb.ApproximateCreationDateTime")
        self.assertEqual(error_of(decode, b'{"eventName":"REMOVE","tableName":"t","dynamodb":{"ApproximateCreationDateTime":1,"Keys":{"id":{"S":"a"}}}}'),
                         "the record has no eventID")
        self.assertEqual(error_of(decode, b"{}"), "the record has no eventName")

    def test_timestamps_fit_u64(self):
        self.assertEqual(decode(record(inside='"ApproximateCreationDateTimePrecision":"MICROSECOND",').replace(b":1,", b":18446744073709551615,", 1)).micros, ddb.U64_MAX)
        self.assertEqual(error_of(decode, record().replace(b":1,", b":18446744073709551615,", 1)), "ApproximateCreationDateTime is out of range")
        self.assertEqual(decode(record().replace(b":1,", b":18446744073709551,", 1)).micros, 18446744073709551000)
        for bad in (b"18446744073709551616", b"-1", b"1.0", b"1e3", b'"1"', b"99999999999999999999999"):
            err = error_of(decode, record().replace(b":1,", b":" + bad + b",", 1))
            self.assertIn("dynamodb.ApproximateCreationDateTime", err)

    def test_envelope_errors(self):
        self.assertEqual(error_of(decode, b"not json"), "expected '{' but found 'n' (at byte 0)")
        self.assertEqual(error_of(decode, b"\xff{}"), "the record is not valid UTF-8 (at byte 0)")
        self.assertEqual(error_of(decode, record() + b" x"), f"unexpected 'x' after the end of the record (at byte {len(record()) + 1})")
        self.assertIn('eventSource is "aws:s3"', error_of(decode, record('"tableName":"t","eventSource":"aws:s3",')))
        self.assertIn("userIdentity: expected '{'", error_of(decode, record('"tableName":"t","userIdentity":"x",')))
        # A skipped value at the top level is at depth 1, inside dynamodb at 2.
        self.assertIn("nested deeper than 64 levels", error_of(decode, record('"tableName":"t","x":' + "[" * 65 + "]" * 65 + ",")))
        decode(record('"tableName":"t","x":' + "[" * 64 + "]" * 64 + ","))
        self.assertIn("dynamodb: nested deeper", error_of(decode, record(inside='"x":' + "[" * 64 + "]" * 64 + ",")))
        decode(record(inside='"x":' + "[" * 63 + "]" * 63 + ","))
        self.assertIn("userIdentity: nested deeper", error_of(decode, record('"tableName":"t","userIdentity":{"x":' + "[" * 64 + "]" * 64 + "},")))
        self.assertIn("unpaired surrogate", error_of(decode, record('"tableName":"t","x":"\\ud83d",')))
        self.assertIn("unpaired surrogate", error_of(decode, record('"tableName":"t","x":"\\\\\\ude00",')))
        decode(record('"tableName":"t","x":"\\\\ud83d \\ud83d\\ude00",'))
        self.assertIn("expected a value but found 'N'", error_of(decode, record('"tableName":"t","x":NaN,')))
        self.assertIn("invalid number", error_of(decode, record('"tableName":"t","x":-Infinity,')))
        self.assertIn("control character 0x01", error_of(decode, record('"tableName":"t\x01",')))

    def test_escapes_that_parsed_values_hide(self):
        # ddb-core reads type tags and base64 as written: escaped, they are refused.
        self.assertIn('dynamodb.NewImage.x: unknown attribute type "\\\\u0053"',
                      error_of(decode, record(image='{"id":{"S":"a"},"x":{"\\u0053":"1"}}')))
        self.assertIn("dynamodb.NewImage.b: invalid base64 in binary value: character outside the base64 alphabet",
                      error_of(decode, record(image='{"id":{"S":"a"},"b":{"B":"AA\\u003d"}}')))
        self.assertIn("dynamodb.Keys.id: invalid base64", error_of(decode, record(keys='{"id":{"B":"AA\\/A"}}')))
        # ...while names and other strings are read unescaped.
        c = decode(record(image='{"id":{"S":"\\u0061"},"\\u0078":{"N":"\\u0031"},"y":{"SS":["\\u0041","B"]}}'))
        self.assertEqual(json.loads(c.new_image), {"id": "a", "x": 1, "y": ["A", "B"]})

    def test_the_prefilter(self):
        for text, exact in [
            ('{"a":"plain"}', False),
            ('{"a":"q\\"uote\\n\\\\ caf\\u00e9"}', False),
            ('{"a":"\\ud83d\\ude00"}', False),
            ('{"a":"\\\\ud83d"}', False),  # an escaped backslash, then "ud83d"
            ('{"a":"\\ud83d"}', True),
            ('{"a":"\\ude00"}', True),
            ('{"a":"\\ud83d\\ud83d\\ude00"}', True),
            ('{"a":"\\\\\\ude00"}', True),
            ('{"a":"x\\u0041"}', True),
            ('{"a":"x\\/y"}', True),
            ('{"a":"x\\/ y"}', False),
            ('{"a":"\\u0020"}', False),
        ]:
            self.assertEqual(ddb._needs_exact(text), exact, text)

    def test_without_the_c_json_scanner(self):
        # componentize-py's Python may lack _json; Python's own scanner is laxer.
        import json.decoder
        import json.scanner
        decoder = json.JSONDecoder(object_pairs_hook=ddb._object, parse_int=ddb._raw_number,
                                   parse_float=ddb._raw_number, parse_constant=ddb._no_constant)
        decoder.scan_once = json.scanner.py_make_scanner(decoder)
        saved = (ddb._loads_record, ddb._C_JSON, json.decoder.scanstring)
        ddb._loads_record, ddb._C_JSON, json.decoder.scanstring = decoder.decode, False, json.decoder.py_scanstring
        try:
            self.assertIn("invalid hex digit", error_of(decode, record('"tableName":"t","x":"\\u+0e9",')))
            self.assertIn("invalid hex digit", error_of(decode, record(image='{"id":{"S":"a"},"x":{"S":"\\u 0e9"}}')))
            self.assertIn("expected", error_of(decode, record('"tableName":"t","SizeBytes":\u0661,')))
            self.assertIn("expected", error_of(decode, record('"tableName":"t","SizeBytes":1\u0661,')))
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                ok = run_cases(False) and run_structural_fuzz(300, seed=3)
            self.assertTrue(ok, printed.getvalue())
        finally:
            ddb._loads_record, ddb._C_JSON, json.decoder.scanstring = saved

    def test_images_keep_member_order_and_escapes_stay_values(self):
        c = decode(record(image='{"z":{"S":"1"},"a":{"S":"caf\\u00e9 \\/ \\"q\\" \\ud83d\\ude00"},"m":{"M":{"y":{"N":"1"},"b":{"N":"2"}}}}'))
        self.assertEqual(list(json.loads(c.new_image)), ["z", "a", "m"])
        self.assertEqual(json.loads(c.new_image)["a"], 'café / "q" 😀')

    def test_sequence_is_the_tiebreak(self):
        self.assertEqual(decode_stream_change(record(), "49590338271490256608559692538361571095921575989136588898").tiebreak,
                         "49590338271490256608559692538361571095921575989136588898")


KEYS = ["sk", "pk"]


def full(line: str) -> Change:
    return decode_export_line(line.encode(), "3", table="t", keys=KEYS, export_time_micros=7, incremental=False)


def incremental(line: str) -> Change:
    return decode_export_line(line.encode(), "3", table="t", keys=[], export_time_micros=7, incremental=True)


class Export(unittest.TestCase):
    """export.rs"""

    def test_full_export_items_are_bulk_loads_at_export_time(self):
        c = full('{"Item":{"qty":{"N":"2.50"},"pk":{"S":"a"},"sk":{"N":"1"},"tags":{"SS":["x"]}}}')
        self.assertEqual(c.key, '{"pk":"a","sk":1}')
        self.assertEqual(c.new_image, '{"qty":2.50,"pk":"a","sk":1,"tags":["x"]}')
        self.assertEqual((c.operation, c.micros, c.event_name, c.table, c.event_id, c.old_image, c.tiebreak),
                         ("upsert", 7, "BULK_LOAD", "t", "", None, "3"))

    def test_the_key_matches_the_stream_records_key(self):
        stream = decode(b'{"eventID":"e","eventName":"INSERT","tableName":"t","dynamodb":{"ApproximateCreationDateTime":1,\n'
                        b'"Keys":{"sk":{"N":"1"},"pk":{"S":"caf\\u00e9"}},"NewImage":{"pk":{"S":"caf\\u00e9"},"sk":{"N":"1"}}}}')
        self.assertEqual(stream.key, full('{"Item":{"pk":{"S":"café"},"sk":{"N":"1"}}}').key)

    def test_full_export_errors_name_the_problem(self):
        self.assertIn('no key attribute "sk"', error_of(full, '{"Item":{"pk":{"S":"a"}}}'))
        self.assertEqual(error_of(full, '{"Item":{"pk":{"S":"a"}}}'), 'Item: the item has no key attribute "sk"')
        self.assertIn("must be S, N or B", error_of(full, '{"Item":{"pk":{"M":{}},"sk":{"N":"1"}}}'))
        self.assertIn("no Item", error_of(full, '{"Keys":{"pk":{"S":"a"}}}'))
        error_of(full, '{"Item":{"pk":{"S":"a"},"sk":{"N":"1x"}}}')
        none = error_of(decode_export_line, b'{"Item":{"pk":{"S":"a"}}}', "1", table="t", keys=[], export_time_micros=0, incremental=False)
        self.assertEqual(none, "a full export's items carry no key: list the key attributes of table \"t\" in the manifest's `keys`")

    def test_number_keys_match_the_stream_records_key_whatever_the_spelling(self):
        stream = decode(b'{"eventID":"e","eventName":"INSERT","tableName":"t","dynamodb":{"ApproximateCreationDateTime":1,\n'
                        b'"Keys":{"sk":{"N":"1.50E1"},"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"sk":{"N":"1.50E1"}}}}')
        self.assertEqual(stream.key, '{"pk":"a","sk":15}')
        for sk in ["15", "15.0", "1.5E1", "150e-1", "+015"]:
            export = full(f'{{"Item":{{"pk":{{"S":"a"}},"sk":{{"N":"{sk}"}}}}}}')
            self.assertEqual(export.key, stream.key, sk)
            self.assertIn(":" + sk.lstrip("+0"), export.new_image)
        line = incremental('{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"},"sk":{"N":"150E-1"}}}')
        self.assertEqual(line.key, stream.key)

    def test_a_name_twice_is_refused_in_every_part_of_a_line(self):
        for line, why in [
            ('{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"pk":{"S":"b"}}}', 'Item: duplicate member name "pk"'),
            ('{"Item":{"pk":{"S":"a"},"x":{"N":"1"},"sk":{"N":"1"},"x":{"N":"1"}}}', 'Item: duplicate member name "x"'),
            ('{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}},"Item":{}}', 'duplicate member name "Item"'),
            ('{"Item":{"pk":{"S":""},"sk":{"N":"1"}}}', "Item.pk: an empty string cannot be a key value"),
            ('{"Item":{"pk":{"S":"a"},"sk":{"B":""}}}', "Item.sk: an empty binary cannot be a key value"),
        ]:
            err = error_of(full, line)
            self.assertTrue(err.startswith(why), f"{line}: {err}")
        meta = '"Metadata":{"WriteTimestampMicros":{"N":"1"}}'
        keys = '"Keys":{"pk":{"S":"a"}}'
        for line, why in [
            (f"{{{meta},{keys},{keys}}}", 'duplicate member name "Keys"'),
            (f"{{{meta},{meta},{keys}}}", 'duplicate member name "Metadata"'),
            (f'{{"Metadata":{{"WriteTimestampMicros":"1","WriteTimestampMicros":"2"}},{keys}}}', 'Metadata: duplicate member name "WriteTimestampMicros"'),
            (f'{{{meta},"Keys":{{"pk":{{"S":"a"}},"pk":{{"S":"a"}}}}}}', 'Keys: duplicate member name "pk"'),
            (f'{{{meta},{keys},"NewImage":{{"pk":{{"S":"a"}},"pk":{{"S":"a"}}}}}}', 'NewImage: duplicate member name "pk"'),
            (f'{{{meta},{keys},"OldImage":{{"pk":{{"S":"a"}},"p\\u006b":{{"S":"a"}}}}}}', 'OldImage: duplicate member name "pk"'),
            (f'{{{meta},"Keys":{{"pk":{{"S":""}}}}}}', "Keys.pk: an empty string cannot be a key value"),
        ]:
            err = error_of(incremental, line)
            self.assertTrue(err.startswith(why), f"{line}: {err}")

    def test_incremental_lines_are_writes_and_deletes_at_their_timestamp(self):
        new = incremental('{"Metadata":{"WriteTimestampMicros":{"N":"1680109764000000"}},"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"}}}')
        self.assertEqual((new.operation, new.micros, new.event_name, new.event_id), ("upsert", 1_680_109_764_000_000, "INSERT", ""))
        modified = incremental('{"Metadata":{"WriteTimestampMicros":{"N":"5"}},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"}}}')
        self.assertEqual(modified.event_name, "MODIFY")
        deleted = incremental('{"Metadata":{"WriteTimestampMicros":"6"},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}}}')
        self.assertEqual((deleted.operation, deleted.new_image, deleted.event_name, deleted.key), ("delete", None, "REMOVE", '{"pk":"a"}'))
        self.assertEqual(incremental('{"Metadata":{"WriteTimestampMicros":8},"Keys":{"pk":{"S":"a"}}}').micros, 8)
        self.assertEqual(incremental('{"Metadata":{"WriteTimestampMicros":"+9"},"Keys":{"pk":{"S":"a"}}}').micros, 9)
        self.assertEqual(incremental('{"Metadata":{"WriteTimestampMicros":"18446744073709551615"},"Keys":{"pk":{"S":"a"}}}').micros, ddb.U64_MAX)

    def test_incremental_errors_name_the_problem(self):
        self.assertIn("WriteTimestampMicros", error_of(incremental, '{"Keys":{"pk":{"S":"a"}}}'))
        self.assertIn("whole number", error_of(incremental, '{"Metadata":{"WriteTimestampMicros":{"N":"-1"}},"Keys":{"pk":{"S":"a"}}}'))
        self.assertIn("no Keys", error_of(incremental, '{"Metadata":{"WriteTimestampMicros":{"N":"1"}}}'))
        error_of(incremental, '{"Item":{"pk":{"S":"a"}}}')
        error_of(incremental, '{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"}}')
        for bad in ['"18446744073709551616"', '"1.0"', '"\\u0031"', '""', '"+"', "-1", "1.5", "true", '{"S":"1"}', '{"\\u004e":"1"}']:
            err = error_of(incremental, f'{{"Metadata":{{"WriteTimestampMicros":{bad}}},"Keys":{{"pk":{{"S":"a"}}}}}}')
            self.assertTrue(err.startswith("Metadata: "), err)
        self.assertEqual(error_of(incremental, '{"Metadata":{},"Keys":{"pk":{"S":"a"}}}'), "Metadata: Metadata has no WriteTimestampMicros")

    def test_members_of_the_other_kind_are_skipped(self):
        # A full export ignores Keys/NewImage; an incremental one ignores Item.
        c = full('{"Keys":{"bad":{"M":{}}},"Item":{"pk":{"S":"a"},"sk":{"N":"1"}},"NewImage":7}')
        self.assertEqual(c.key, '{"pk":"a","sk":1}')
        c = incremental('{"Item":{"x":{"Q":"?"}},"Metadata":{"WriteTimestampMicros":"1"},"Keys":{"pk":{"S":"a"}}}')
        self.assertEqual(c.operation, "delete")

    def test_full_export_key_attributes_are_skipped_at_depth_one(self):
        # item_key skips non-key attributes with skip_value(1) before the image is
        # written at depth 1, so a deep non-key attribute hits the limit sooner
        # than the same attribute in a stream record's NewImage.
        def nested(k):
            return '{"M":{"d":' * k + '{"S":"bottom"}' + "}}" * k
        full(f'{{"Item":{{"pk":{{"S":"a"}},"sk":{{"N":"1"}},"deep":{nested(31)}}}}}')
        self.assertIn("Item: nested deeper than 64 levels", error_of(full, f'{{"Item":{{"pk":{{"S":"a"}},"sk":{{"N":"1"}},"deep":{nested(32)}}}}}'))
        decode(record(image=f'{{"id":{{"S":"a"}},"deep":{nested(40)}}}'))

    def test_export_time_must_fit_u64(self):
        with self.assertRaises(ValueError):
            decode_export_line(b"{}", "1", table="t", keys=KEYS, export_time_micros=-1, incremental=False)
        with self.assertRaises(TypeError):
            decode_export_line(b"{}", "1", table="t", keys=KEYS, export_time_micros=1.5, incremental=False)


class PythonValues(unittest.TestCase):
    """plain(), loads(), to_json(), Number"""

    def test_plain_values(self):
        item = plain_item({"s": {"S": "x"}, "n": {"N": "+007.50"}, "b": {"B": "AAE="}, "t": {"BOOL": True},
                           "z": {"NULL": True}, "m": {"M": {"a": {"N": "1E0"}}}, "l": {"L": [{"S": "y"}, {"N": "2"}]},
                           "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": ["AA=="]}})
        self.assertEqual(item, {"s": "x", "n": Decimal("7.5"), "b": "AAE=", "t": True, "z": None, "m": {"a": Decimal(1)},
                                "l": ["y", Decimal(2)], "ss": ["a", "b"], "ns": [Decimal(1), Decimal("2.5")], "bs": ["AA=="]})
        self.assertIsInstance(item["n"], Decimal)
        self.assertNotIsInstance(item["n"], float)
        self.assertEqual(to_json(item), '{"s":"x","n":7.50,"b":"AAE=","t":true,"z":null,"m":{"a":1E0},"l":["y",2],'
                                        '"ss":["a","b"],"ns":[1,2.5],"bs":["AA=="]}')

    def test_plain_refuses_what_the_decoder_refuses(self):
        for attr, why in [({"SS": []}, "empty SS set"), ({"NS": ["1", "1.0"]}, '[1]: duplicate NS element "1.0"'),
                          ({"BS": ["AA==", "AA=="]}, "duplicate BS element"), ({"N": "1,5"}, "invalid number"),
                          ({"N": 1}, "N must hold a string"), ({"B": "AB=="}, "not canonical base64"),
                          ({"NULL": False}, "NULL must be true"), ({"Q": "x"}, "unknown attribute type"),
                          ({}, "needs a type"), ({"S": "a", "N": "1"}, "exactly one type"),
                          ({"M": {"a": {"L": [{"N": "x"}]}}}, "a[0]: invalid number")]:
            self.assertIn(why, error_of(plain, attr), attr)

    def test_images_round_trip_through_python_values(self):
        for payload in all_case_records():
            try:
                c = decode_stream_change(payload, "1")
            except DecodeError:
                continue
            for text in (c.new_image, c.old_image):
                if text is not None:
                    self.assertEqual(to_json(loads(text)), text, payload)
            if c.new_image is not None and b"\\" not in payload:
                raw = json.loads(payload)["dynamodb"]["NewImage"]
                self.assertEqual(to_json(plain_item(raw)), c.new_image, payload)
                self.assertEqual(c.new_item(), loads(c.new_image))

    def test_to_json(self):
        self.assertEqual(to_json({"a": [1, True, None, "é\n", Decimal("2.50"), Decimal("1E+3"), b"\x00\x01", (Decimal("-0"),)]}),
                         '{"a":[1,true,null,"é\\n",2.50,1E+3,"AAE=",[-0]]}')
        self.assertEqual(to_json(Number("1e+125")), "1e+125")
        self.assertEqual(to_json(Number("7.10") + 1), "8.10")
        for bad in (1.5, Decimal("NaN"), Decimal("Infinity"), {1: "x"}, {"a"}, object()):
            with self.assertRaises((TypeError, ValueError), msg=repr(bad)):
                to_json(bad)

    def test_number_keeps_its_spelling(self):
        n = loads('{"a":2.50}')["a"]
        self.assertEqual((n, n.json, str(n + 0)), (Decimal("2.5"), "2.50", "2.50"))
        self.assertIs(copy.deepcopy(n), n)
        self.assertEqual(copy.copy(n).json, "2.50")
        import pickle
        self.assertEqual(pickle.loads(pickle.dumps(n)).json, "2.50")
        self.assertEqual(hash(n), hash(Decimal("2.5")))


class Limits(unittest.TestCase):
    """The WIT's integer types: u64 order.micros, s64 extra integers."""

    def test_u64(self):
        for good in (0, 1, ddb.U64_MAX):
            self.assertEqual(check_u64(good), good)
        for bad in (-1, ddb.U64_MAX + 1, 10 ** 100, -(10 ** 5000)):
            with self.assertRaises(ValueError) as e:
                check_u64(bad, "order.micros")
            self.assertIn("order.micros", str(e.exception))
            self.assertIn("u64", str(e.exception))
        for bad in (1.0, "1", True, None, Decimal(1)):
            with self.assertRaises(TypeError):
                check_u64(bad)

    def test_s64(self):
        for good in (ddb.S64_MIN, -1, 0, ddb.S64_MAX):
            self.assertEqual(check_s64(good), good)
        for bad in (ddb.S64_MIN - 1, ddb.S64_MAX + 1, ddb.U64_MAX):
            with self.assertRaises(ValueError) as e:
                check_s64(bad, "extra column n")
            self.assertIn("s64", str(e.exception))
        with self.assertRaises(TypeError):
            check_s64(False)

    def test_decoded_micros_always_fit(self):
        c = decode(record().replace(b":1,", b":18446744073709551,", 1))
        self.assertEqual(check_u64(c.micros), c.micros)


def main() -> int:
    global CASES
    verbose = "-v" in sys.argv
    if "--cases" in sys.argv:
        CASES = os.path.abspath(sys.argv[sys.argv.index("--cases") + 1])
    ok = run_cases(verbose)
    ok = run_fuzz() and ok
    ok = run_structural_fuzz() and ok
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2 if verbose else 1).run(suite)
    ok = result.wasSuccessful() and ok
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
