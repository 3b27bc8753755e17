"""The seed's per-record logic, re-expressed in plain Python, for comparison.

The AWS sample sluice replaces (../shared/seed) decodes each stream record's
`dynamodb` part with boto3's TypeDeserializer in a Python UDF, writes keys and
images as JSON text with numbers as strings, and keeps the latest change per
`keys` string. This does the same over a file of stream records, on one core,
and writes nothing; a record it cannot decode becomes an error row, as in the
sample (sets and binaries do: TypeDeserializer wants bytes, json.dumps no sets).

    python3 seed_logic.py <stream.jsonl>

prints `<records> records in <seconds> s`, the decoding loop alone.
"""

import json
import sys
import time

from boto3.dynamodb.types import TypeDeserializer


def main(path):
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    deserializer = TypeDeserializer()

    def plain(image):
        return json.dumps({k: deserializer.deserialize(v) for k, v in image.items()}, default=str)

    started = time.perf_counter()
    latest = {}
    for line in lines:
        record = json.loads(line)
        ddb = record["dynamodb"]
        at = ddb["ApproximateCreationDateTime"]
        try:
            keys = plain(ddb["Keys"])
            row = (
                at,
                record["eventID"],
                record["eventName"],
                record["tableName"],
                plain(ddb["NewImage"]) if "NewImage" in ddb else None,
                plain(ddb["OldImage"]) if "OldImage" in ddb else None,
                None,
            )
        except Exception as e:  # the sample's error row: keys NULL, the reason kept
            keys, row = None, (at, record.get("eventID"), None, None, None, None, str(e))
        kept = latest.get(keys)
        if kept is None or kept[0] <= at:
            latest[keys] = row
    elapsed = time.perf_counter() - started
    print(f"{len(lines)} records in {elapsed:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1])
