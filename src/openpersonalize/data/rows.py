"""Dataset rows as Arrow: the types of schema fields, where a dataset's files live, and readers
of its bulk rows (Parquet files) and real-time rows (SQL records).

Bulk files are read in the dataset's *current* schema: a column added later by UpdateDataset is
null in older files. Real-time rows carry three more columns for readers that need them:
``_created`` (epoch seconds when the record was accepted), ``_user_id`` (the identified user,
null for anonymous events) and ``_session_id``.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import Settings
from ..errors import ResourceNotFoundException
from ..store.files import DataRoot, storage
from ..store.metadata import Store
from ..store.records import BulkState, Records
from .schemas import Schema, parse_schema

ID_COLUMNS = {"ITEMS": "ITEM_ID", "USERS": "USER_ID", "ACTIONS": "ACTION_ID"}
PUT_META = [("_created", pa.float64()), ("_user_id", pa.string()), ("_session_id", pa.string())]


def arrow_type(avro_type: str) -> pa.DataType:
    """The Arrow type that stores values of an Avro primitive."""
    if avro_type in ("int", "long"):
        return pa.int64()
    if avro_type in ("float", "double"):
        return pa.float64()
    if avro_type == "boolean":
        return pa.bool_()
    return pa.string()


def arrow_schema(schema: Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, arrow_type(f.type)) for f in schema.fields])


def records(store: Store) -> Records:
    """An accessor of a store's real-time records and file lists, for jobs and tools. Its caches
    live as long as it does: a server's requests use the one their ``ProcessState`` keeps
    (``ctx.state.records``, state.py)."""
    return Records(store)


def dataset_dir(dataset_arn: str) -> str:
    """Folder of a dataset's files under the data root, from its ARN (names are path-safe)."""
    parts = dataset_arn.split(":", 5)
    region, account = parts[3], parts[4]
    _, group, dtype = parts[5].split("/")
    return f"datasets/{region}/{account}/{group}/{dtype}"


class Dataset:
    """One dataset's rows: its schema, type, bulk files and real-time records."""

    def __init__(self, store: Store, settings: Settings, dataset_arn: str, *, row=None,
                 records: Records | None = None):
        self.store = store
        self.settings = settings
        self.arn = dataset_arn
        self.row = row or store.get(dataset_arn)
        if self.row is None or self.row.kind != "dataset":
            raise ResourceNotFoundException.for_arn(dataset_arn)
        self.type: str = self.row.doc["datasetType"]
        schema_row = store.get(self.row.doc["schemaArn"])
        self.schema: Schema = parse_schema(schema_row.doc["schema"])
        self.arrow_schema = arrow_schema(self.schema)
        self.records = records if records is not None else Records(store)  # given: the process's (events.py)
        self.root: DataRoot = storage(settings).data_root
        self.dir = dataset_dir(dataset_arn)

    @property
    def id_column(self) -> str | None:
        """The column whose value identifies a record (Items, Users, Actions), else None."""
        name = ID_COLUMNS.get(self.type)
        field = self.schema.field(name) if name else None
        return field.name if field else None

    def column(self, name: str) -> str | None:
        field = self.schema.field(name)
        return field.name if field else None

    # -- bulk -------------------------------------------------------------------------------

    def bulk_state(self) -> BulkState:
        return self.records.bulk_state(self.arn)

    def iter_part(self, part: dict, batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        """Record batches of one bulk file, in the current schema."""
        with self.root.open(part["file"], "rb") as fh:
            pf = pq.ParquetFile(fh)
            have = set(pf.schema_arrow.names)
            wanted = [f.name for f in self.arrow_schema if f.name in have]
            for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
                yield conform(batch, self.arrow_schema)

    def iter_bulk(self, state: BulkState | None = None) -> Iterator[pa.RecordBatch]:
        state = state or self.bulk_state()
        for part in state.parts:
            yield from self.iter_part(part)

    # -- real-time --------------------------------------------------------------------------

    def iter_put(self, *, batch_rows: int = 5000, until_id: int | None = None,
                 after_id: int = 0) -> Iterator[pa.RecordBatch]:
        """Real-time rows in arrival order (those with ids in ``(after_id, until_id]``), with the
        ``_created``/``_user_id``/``_session_id`` columns."""
        schema = pa.schema(list(self.arrow_schema) + [pa.field(n, t) for n, t in PUT_META])
        for chunk in self.records.iter_rows(self.arn, batch=batch_rows, until_id=until_id, after_id=after_id):
            columns = {f.name: [] for f in schema}
            for _id, created, user_id, session_id, row in chunk:
                for f in self.arrow_schema:
                    columns[f.name].append(row.get(f.name))
                columns["_created"].append(created)
                columns["_user_id"].append(user_id)
                columns["_session_id"].append(session_id)
            yield pa.record_batch([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s columns: missing ones null, types cast."""
    arrays = []
    names = batch.schema.names
    for f in schema:
        if f.name in names:
            col = batch.column(names.index(f.name))
            arrays.append(col if col.type == f.type else col.cast(f.type))
        else:
            arrays.append(pa.nulls(batch.num_rows, f.type))
    return pa.record_batch(arrays, schema=schema)


def dataset_for(store: Store, settings: Settings, dataset_arn: str) -> Dataset:
    return Dataset(store, settings, dataset_arn)


def group_datasets(store: Store, settings: Settings, group_arn: str) -> dict[str, Dataset]:
    """The datasets of a group by type (``INTERACTIONS``, ``ITEMS``, ...)."""
    out = {}
    for row in store.query("dataset", group_arn=group_arn):
        out[row.doc["datasetType"]] = Dataset(store, settings, row.arn, row=row)
    return out


def data_mark(datasets: dict[str, Dataset]) -> str:
    """Changes whenever a group's data does (``datasets``: ``group_datasets``' answer): per
    dataset, its bulk generation and newest real-time record. Trained models keep the mark of
    the data they read, so automatic updates can tell whether anything arrived since."""
    return ",".join(f"{kind}:{ds.records.bulk_state(ds.arn).generation}:{ds.records.last_id(ds.arn)}"
                    for kind, ds in sorted(datasets.items()))


def remove_dataset_files(store: Store, settings: Settings, dataset_arn: str) -> None:
    """Delete a dataset's rows: its records, its file list and its folder (DeleteDataset)."""
    records(store).forget_dataset(dataset_arn)
    storage(settings).data_root.remove(dataset_dir(dataset_arn))




# -- writing bulk files ---------------------------------------------------------------------


def new_part_name(directory: str, token: str, index: int) -> str:
    """A fresh bulk file name; the creation time in it lets sweeps skip files still being written."""
    return f"{directory}/parts/{int(time.time())}-{token}-{index:05d}.parquet"


def _job_key(job_arn: str) -> str:
    return "j" + hashlib.sha1(job_arn.encode()).hexdigest()[:10]


def job_part_token(job_arn: str, attempt: int) -> str:
    """The token in the names of the bulk files a job writes: it names the job and the attempt,
    so that a later attempt (or the cleanup after a crash) can find what earlier ones left."""
    return f"{_job_key(job_arn)}a{attempt}"


def remove_unpublished_parts(ds: Dataset, job_arn: str) -> int:
    """Delete the bulk files any attempt of ``job_arn`` wrote that the dataset does not list (the
    attempt died or failed before publishing them); returns how many went."""
    listed = {p["file"] for p in ds.bulk_state().parts}
    marker = f"-{_job_key(job_arn)}a"
    removed = 0
    for rel in list(ds.root.walk_files(f"{ds.dir}/parts")):
        if marker in rel.rsplit("/", 1)[-1] and rel not in listed:
            ds.root.remove(rel)
            removed += 1
    return removed


class PartWriter:
    """Writes record batches into Parquet files of at most ``max_rows`` rows each.

    Writing runs in a background thread, fed through a short queue, so that parsing the next
    block overlaps with encoding this one (both release the GIL) while memory stays bounded.
    """

    def __init__(self, root: DataRoot, directory: str, schema: pa.Schema, *, token: str,
                 compression: str = "lz4", max_rows: int = 8_000_000):
        self.root, self.directory, self.schema = root, directory, schema
        self.token, self.max_rows = token, max_rows
        self.compression = None if compression in ("", "none") else compression
        self.parts: list[dict] = []
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def write(self, batch: pa.RecordBatch) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self) -> list[dict]:
        """Finish every file; returns the parts written (``file`` and ``rows``)."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.parts

    def abort(self) -> None:
        """Stop and delete what was written (the job failed)."""
        self._queue.put(None)
        self._thread.join()
        for part in self.parts:
            self.root.remove(part["file"])

    def _run(self) -> None:
        writer = fh = None
        rows = 0
        try:
            while True:
                batch = self._queue.get()
                if batch is None:
                    break
                if self._error is not None:
                    continue  # drain after an error, so that producers never block
                if writer is None or rows >= self.max_rows:
                    if writer is not None:
                        writer.close()
                        fh.close()
                    name = new_part_name(self.directory, self.token, len(self.parts))
                    fh = self.root.open(name, "wb")
                    # Dictionary encoding costs more time than it saves space on id columns.
                    writer = pq.ParquetWriter(fh, self.schema, compression=self.compression,
                                              use_dictionary=False, write_statistics=False)
                    self.parts.append({"file": name, "rows": 0})
                    rows = 0
                writer.write_batch(batch)
                rows += batch.num_rows
                self.parts[-1]["rows"] += batch.num_rows
        except BaseException as exc:  # handed to the producer thread
            self._error = exc
            while self._queue.get() is not None:
                pass
        finally:
            if writer is not None:
                try:
                    writer.close()
                    fh.close()
                except Exception as exc:
                    self._error = self._error or exc


def rewrite_part_without(ds: Dataset, part: dict, column: str, values: pa.Array,
                         token: str | None = None) -> tuple[list[dict], int]:
    """A bulk part with the rows whose ``column`` is in ``values`` removed.

    Returns the parts that replace it (the part itself when no row matches; fresh files
    otherwise, written before anything is published) and how many rows were removed. ``token``
    begins the new files' names (see ``job_part_token``).
    """
    hits = sum(pc.sum(pc.is_in(b.column(column), value_set=values)).as_py() or 0 for b in ds.iter_part(part))
    if not hits:
        return [part], 0
    # Each rewrite gets names of its own: a job may rewrite several parts, and write new ones.
    fresh = uuid.uuid4().hex[:10]
    writer = PartWriter(ds.root, ds.dir, ds.arrow_schema, token=f"{token}r{fresh}" if token else fresh,
                        compression=ds.settings.parquet_compression)
    try:
        for batch in ds.iter_part(part):
            kept = batch.filter(pc.invert(pc.is_in(batch.column(column), value_set=values)))
            if kept.num_rows:
                writer.write(kept)
        written = writer.close()
    except BaseException:
        writer.abort()
        raise
    return [{**part, **new} for new in written], hits


def sweep_parts(ds: Dataset, current: list[dict], grace_seconds: float) -> int:
    """Delete bulk files of ``ds`` that are no longer listed and older than ``grace_seconds``.

    Replaced files are kept for a grace period because a reader (an export, a training) that
    started before the swap may still be reading them; files of a job still writing are recent.
    """
    keep = {p["file"] for p in current}
    cutoff = time.time() - grace_seconds
    removed = 0
    for rel in list(ds.root.walk_files(f"{ds.dir}/parts")):
        if rel in keep:
            continue
        stamp = rel.rsplit("/", 1)[-1].split("-", 1)[0]
        if stamp.isdigit() and int(stamp) < cutoff:
            ds.root.remove(rel)
            removed += 1
    return removed
