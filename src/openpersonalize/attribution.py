"""Metric attributions that compute: what recommendations earned, per attribution source.

A metric attribution names metrics (an ``eventType``, a ``metricName`` and ``SAMPLECOUNT()`` or
``SUM(Interactions.COLUMN)`` / ``SUM(Items.COLUMN)``). Each interaction of that event type counts
for its attribution source: ``metricAttribution.eventAttributionSource`` when the event has one,
else the campaign or recommender whose ``recommendationId`` it carries (the ``CID`` part of the
id names it, runtime.py), else ``SOURCE_NAME_UNDEFINED`` (AWS's rules). Aggregates are per
15-minute interval of the event time.

Where they go (``runtime-and-events.md``, "Metric attribution"): PutEvents records are published
every ``metrics_publish_seconds`` (900 by default; the server's ``Every`` thread calls
``publish_events``) to the attribution's S3 destination as
``AggregatedAttributionMetrics - PutEvents - <epoch seconds>.csv``, one file per publication that
saw events; a bulk import with ``publishAttributionMetricsToS3`` writes ``... - Bulk - ...``
when it completes. Running totals per metric, event type and source are kept on the attribution
and shown on ``/metrics`` (``openpersonalize_attribution_value``). Only records that arrived after
the attribution was created count; UpdateMetricAttribution's metrics apply from the next
publication.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from .data.rows import group_datasets
from .store.files import Storage

log = logging.getLogger("openpersonalize.attribution")

INTERVAL_SECONDS = 900  # AWS's 15-minute periods
UNDEFINED = "SOURCE_NAME_UNDEFINED"
HEADER = ["METRIC_NAME", "EVENT_TYPE", "VALUE", "MATH_FUNCTION", "EVENT_ATTRIBUTION_SOURCE", "TIMESTAMP"]
_SUM = re.compile(r"SUM\(\s*(Interactions|Items)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", re.IGNORECASE)
_COUNT = re.compile(r"SAMPLECOUNT\(\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class Metric:
    name: str
    event_type: str
    function: str  # "samplecount" or "sum"
    dataset: str | None = None  # "INTERACTIONS" or "ITEMS" for sum
    column: str | None = None


def parse_metric(m: dict) -> Metric | None:
    expression = m["expression"].strip()
    if _COUNT.fullmatch(expression):
        return Metric(m["metricName"], m["eventType"], "samplecount")
    found = _SUM.fullmatch(expression)
    if found:
        return Metric(m["metricName"], m["eventType"], "sum", found.group(1).upper(), found.group(2).upper())
    return None


@functools.lru_cache(maxsize=4096)
def source_code(arn: str) -> str:
    """The 6 hex characters a recommendationId carries to name the campaign or recommender."""
    return hashlib.sha256(arn.encode()).hexdigest()[:6]


def _column(schema, name: str) -> str | None:
    field = schema.field(name) if schema is not None else None
    return field.name if field is not None else None


class Attributor:
    """Aggregates the interactions of one dataset group for one metric attribution."""

    def __init__(self, store, settings, attribution_doc: dict, group_arn: str):
        self.metrics = [m for m in map(parse_metric, attribution_doc.get("_metrics") or []) if m]
        self.datasets = group_datasets(store, settings, group_arn)
        self.interactions = self.datasets.get("INTERACTIONS")
        self.codes: dict[str, str] = {}
        for kind in ("campaign", "recommender"):
            for row in store.query(kind, group_arn=group_arn):
                self.codes[source_code(row.arn)] = row.arn
        self._item_values: dict[str, dict[str, float]] = {}

    def source(self, given: str | None, recommendation_id: str | None) -> str:
        if given:
            return given
        if recommendation_id and "-CID-" in recommendation_id:
            return self.codes.get(recommendation_id.rsplit("-CID-", 1)[1], UNDEFINED)
        return UNDEFINED

    def item_values(self, column: str) -> dict[str, float]:
        """Item ID -> value of an Items column (the newest row of each item)."""
        if column not in self._item_values:
            values: dict[str, float] = {}
            items = self.datasets.get("ITEMS")
            if items is not None and _column(items.schema, column) and items.id_column:
                name = _column(items.schema, column)
                for batch in [*items.iter_bulk(), *items.iter_put()]:
                    for key, value in zip(batch.column(items.id_column).to_pylist(), batch.column(name).to_pylist()):
                        if value is not None:
                            values[str(key)] = float(value)
            self._item_values[column] = values
        return self._item_values[column]

    def aggregate(self, batches: Iterable[pa.RecordBatch]) -> dict[tuple[str, str, str, str, int], float]:
        """``(metric, event type, function, source, interval start) -> value`` over the batches."""
        out: dict[tuple, float] = defaultdict(float)
        ds = self.interactions
        if ds is None or not self.metrics:
            return out
        schema = ds.schema
        names = {k: _column(schema, k) for k in ("EVENT_TYPE", "TIMESTAMP", "ITEM_ID", "EVENT_ATTRIBUTION_SOURCE",
                                                  "RECOMMENDATION_ID")}
        for batch in batches:
            n = batch.num_rows
            column = {k: batch.column(v).to_pylist() if v else [None] * n for k, v in names.items()}
            sums = {}
            for m in self.metrics:
                if m.function == "sum" and m.dataset == "INTERACTIONS":
                    name = _column(schema, m.column)
                    sums[m] = batch.column(name).to_pylist() if name else [None] * n
            for k in range(n):
                event_type = column["EVENT_TYPE"][k]
                source = None
                for m in self.metrics:
                    if event_type != m.event_type:
                        continue
                    if source is None:
                        source = self.source(column["EVENT_ATTRIBUTION_SOURCE"][k], column["RECOMMENDATION_ID"][k])
                        stamp = int(column["TIMESTAMP"][k] or 0) // INTERVAL_SECONDS * INTERVAL_SECONDS
                    if m.function == "samplecount":
                        value = 1.0
                    elif m.dataset == "INTERACTIONS":
                        value = sums[m][k]
                    else:
                        value = self.item_values(m.column).get(str(column["ITEM_ID"][k]))
                    if value is None:
                        continue
                    out[(m.name, m.event_type, m.function, source, stamp)] += float(value)
        return out


def report_csv(aggregates: dict) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    for (name, event_type, function, source, stamp), value in sorted(aggregates.items(), key=lambda kv: (kv[0][4], kv[0])):
        writer.writerow([name, event_type, f"{value:.1f}" if value == int(value) else repr(value), function, source, stamp])
    return text.getvalue().encode()


def write_report(settings, attribution_doc: dict, method: str, aggregates: dict, now: float | None = None) -> str | None:
    """Write one report file to the attribution's S3 destination; its URI (None without a path)."""
    path = ((attribution_doc.get("metricsOutputConfig") or {}).get("s3DataDestination") or {}).get("path")
    if not path or not aggregates:
        return None
    stamp = int(now if now is not None else time.time())
    uri = f"{path.rstrip('/')}/AggregatedAttributionMetrics - {method} - {stamp}.csv"
    storage = Storage(settings)
    temp = uri + ".tmp"
    with storage.write_object(temp, "metricsOutputConfig.s3DataDestination.path") as out:
        out.write(report_csv(aggregates))
    storage.move(temp, uri, "metricsOutputConfig.s3DataDestination.path")
    return uri


def _add_totals(doc: dict, aggregates: dict) -> list:
    totals = {(t["metric"], t["eventType"], t["source"]): t["value"] for t in doc.get("_totals") or []}
    for (name, event_type, _function, source, _stamp), value in aggregates.items():
        totals[(name, event_type, source)] = totals.get((name, event_type, source), 0.0) + value
    return [{"metric": k[0], "eventType": k[1], "source": k[2], "value": v} for k, v in sorted(totals.items())]


def publish_events(store, settings, now: float | None = None) -> list[str]:
    """Publish every metric attribution's new PutEvents records; the report URIs written."""
    written = []
    for row in store.query("metric-attribution"):
        try:
            uri = _publish_one(store, settings, row, now)
        except Exception:
            log.exception("publishing metric attribution %s failed; trying again next time", row.arn)
            continue
        if uri:
            written.append(uri)
    return written


def _publish_one(store, settings, row, now: float | None) -> str | None:
    attributor = Attributor(store, settings, row.doc, row.group_arn)
    ds = attributor.interactions
    if ds is None:
        return None
    until = ds.records.last_id(ds.arn)
    after = row.doc.get("_publishedThrough")
    if after is None:  # records that arrived before the attribution existed do not count
        after = _last_id_before(ds, row.created)
    if until <= after:
        return None
    # Claim the range first: another server process publishing at the same moment finds it taken.
    with store.serialised(f"attribution:{row.arn}") as conn:
        current = store.get(row.arn, conn=conn)
        if current is None or current.doc.get("_publishedThrough") != row.doc.get("_publishedThrough"):
            return None
        store.update_doc(row.arn, {"_publishedThrough": until}, conn=conn)
    batches = (b.filter(pa.array([c >= row.created for c in b.column("_created").to_pylist()]))
               for b in ds.iter_put(after_id=after, until_id=until))
    aggregates = attributor.aggregate(batches)
    uri = write_report(settings, row.doc, "PutEvents", aggregates, now)
    _merge_totals(store, row.arn, aggregates)
    if uri:
        log.info("metric attribution %s: %d aggregate(s) published to %s", row.arn, len(aggregates), uri)
    return uri


def _last_id_before(ds, created: float) -> int:
    last = 0
    for chunk in ds.records.iter_rows(ds.arn):
        for record_id, record_created, *_ in chunk:
            if record_created >= created:
                return last
            last = record_id
    return last


def publish_import(store, settings, group_arn: str, dataset, parts: list[dict]) -> str | None:
    """The report of a bulk import with ``publishAttributionMetricsToS3`` (its rows only)."""
    found = store.query("metric-attribution", group_arn=group_arn, limit=1)
    if not found:
        return None
    row = found[0]
    attributor = Attributor(store, settings, row.doc, group_arn)
    aggregates = attributor.aggregate(b for part in parts for b in dataset.iter_part(part))
    uri = write_report(settings, row.doc, "Bulk", aggregates)
    _merge_totals(store, row.arn, aggregates)
    return uri


def _merge_totals(store, arn: str, aggregates: dict) -> None:
    """Add to the running totals, read and written in one serialised step."""
    if not aggregates:
        return
    with store.serialised(f"attribution:{arn}") as conn:
        current = store.get(arn, conn=conn)
        if current is not None:
            store.update_doc(arn, {"_totals": _add_totals(current.doc, aggregates)}, conn=conn)


# -- comparing sources (A/B) ------------------------------------------------------------------------

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (good at small counts and near 0 or 1)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(a: dict, b: dict, z: float = Z95) -> dict:
    """``b``'s conversion rate minus ``a``'s: the estimate, a 95 % interval (unpooled normal
    approximation) and the two-sided p-value of the pooled z-test for equal rates."""
    import math

    n1, n2 = a["impressions"], b["impressions"]
    if not n1 or not n2:
        return {"a": a["source"], "b": b["source"], "difference": None, "low": None, "high": None, "p": None,
                "significant": False}
    # More conversions than impressions (several purchases after one list) count as converted lists.
    c1, c2 = min(a["conversions"], n1), min(b["conversions"], n2)
    p1, p2 = c1 / n1, c2 / n2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (c1 + c2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = math.erfc(abs(p2 - p1) / se0 / math.sqrt(2)) if se0 > 0 else (1.0 if p1 == p2 else 0.0)
    return {"a": a["source"], "b": b["source"], "difference": p2 - p1, "low": p2 - p1 - z * se,
            "high": p2 - p1 + z * se, "p": p_value, "significant": p_value < 0.05}


def compare(store, settings, group_arn: str, event_type: str, since: float | None = None,
            until: float | None = None) -> dict:
    """Per attribution source over the events whose time is in ``[since, until]``: impressions
    (distinct recommendationIds, plus events with an impression list and no id), events,
    conversions (events of ``event_type``), their value, the conversion rate per impression with
    its 95 % Wilson interval; and every pair of sources' difference with its significance."""
    attributor = Attributor(store, settings, {}, group_arn)
    ds = attributor.interactions
    stats: dict[str, dict] = {}
    if ds is not None:
        schema = ds.schema
        names = {k: _column(schema, k) for k in ("EVENT_TYPE", "TIMESTAMP", "EVENT_VALUE", "EVENT_ATTRIBUTION_SOURCE",
                                                  "RECOMMENDATION_ID", "IMPRESSION")}
        seen_ids: dict[str, set] = defaultdict(set)
        for batch in ds.iter_put():
            n = batch.num_rows
            col = {k: batch.column(v).to_pylist() if v else [None] * n for k, v in names.items()}
            for k in range(n):
                stamp = col["TIMESTAMP"][k] or 0
                if (since is not None and stamp < since) or (until is not None and stamp > until):
                    continue
                rid = col["RECOMMENDATION_ID"][k]
                source = attributor.source(col["EVENT_ATTRIBUTION_SOURCE"][k], rid)
                s = stats.setdefault(source, {"source": source, "impressions": 0, "events": 0, "conversions": 0,
                                              "value": 0.0})
                s["events"] += 1
                if rid:
                    if rid not in seen_ids[source]:
                        seen_ids[source].add(rid)
                        s["impressions"] += 1
                elif col["IMPRESSION"][k]:
                    s["impressions"] += 1
                if col["EVENT_TYPE"][k] == event_type:
                    s["conversions"] += 1
                    s["value"] += float(col["EVENT_VALUE"][k] or 0.0)
    sources = sorted(stats.values(), key=lambda s: -s["impressions"])
    for s in sources:
        s["rate"] = min(s["conversions"], s["impressions"]) / s["impressions"] if s["impressions"] else None
        s["low"], s["high"] = wilson(min(s["conversions"], s["impressions"]), s["impressions"])
    pairs = [difference(a, b) for i, a in enumerate(sources[:10]) for b in sources[i + 1:10]]
    return {"datasetGroupArn": group_arn, "eventType": event_type, "since": since, "until": until,
            "sources": sources, "comparisons": pairs}
