"""Helpers for sluice transform guests written in Python (componentize-py).

Plain Python, standard library only, so it runs (and is tested) natively too:

* :mod:`sluice_guest.ddb` decodes DynamoDB stream records and export lines
  into the very rows the built-in ``builtin:ddb-json`` guest makes
  (:func:`decode_stream_change`, :func:`decode_export_line`), and converts
  between DynamoDB JSON, Python values and plain JSON (:func:`plain`,
  :func:`loads`, :func:`to_json`) without losing a digit.
* :func:`check_u64` / :func:`check_s64` catch integers that do not fit the
  WIT types (``order.micros`` is u64, an extra column's ``integer`` is s64)
  before componentize-py would trap on them.

Run ``python3 guests/sdk-python/test_ddb.py`` to check it against the shared
cases in ``tests/cases/ddb-json``.
"""

from .ddb import *  # noqa: F403  (the public API, as listed in ddb.__all__)
from .ddb import __all__
