"""Data deletion jobs: remove the users listed in a CSV from every dataset of a group.

The input (a file or a prefix of ``.csv`` objects, at most ``max_deletion_input_bytes`` in all)
has one ``USER_ID`` column. Every dataset of the group with a USER_ID column (Users, Interactions,
Action_Interactions) loses those users' rows: bulk files that hold any of them are rewritten
without them and published with one compare-and-set, and their real-time records (with the
anonymous records of their sessions) are deleted. ``numDeleted`` counts the removed records.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..jobs.contract import job_body
from ..jobs.contract import JobContext, JobFailed
from ..store.files import storage
from .importer import PARSE, csv_objects, read_header
from .rows import Dataset, group_datasets, job_part_token, remove_unpublished_parts, rewrite_part_without, sweep_parts

log = logging.getLogger("openpersonalize.deletion")


def read_user_ids(job: JobContext) -> pa.Array:
    """The distinct user IDs of the job's input."""
    location = job.doc["dataSource"]["dataLocation"]
    objects = csv_objects(job, location)
    st = storage(job.settings)
    total = sum(o.size for o in objects)
    if total > job.settings.max_deletion_input_bytes:
        raise JobFailed(f"The input at {location} is {total} bytes; a data deletion job reads at most "
                        f"{job.settings.max_deletion_input_bytes} bytes.")
    chunks = []
    for obj in objects:
        with st.open_input(obj) as fh:
            header = read_header(fh.read(1 << 16))
        if header is None:
            raise JobFailed(f"{obj.uri} is empty: it needs a USER_ID header and one user ID per line.")
        if [h.upper() for h in header] != ["USER_ID"]:
            raise JobFailed(f"{obj.uri} line 1: the header must be the single column USER_ID, not "
                            f"{','.join(header)[:200]}.")
        with st.open_input(obj) as fh:
            try:
                table = pcsv.read_csv(fh, read_options=pcsv.ReadOptions(column_names=["USER_ID"], skip_rows=1),
                                      parse_options=PARSE,
                                      convert_options=pcsv.ConvertOptions(column_types={"USER_ID": pa.string()},
                                                                          strings_can_be_null=False))
            except pa.ArrowInvalid as exc:
                if "Empty CSV" in str(exc):
                    continue
                raise JobFailed(f"{obj.uri}: the CSV cannot be read ({str(exc).splitlines()[0]}).") from None
        chunks.extend(table.column(0).chunks)
    ids = pc.unique(pa.chunked_array(chunks, pa.string()).combine_chunks()) if chunks else pa.array([], pa.string())
    return ids.filter(pc.greater(pc.binary_length(ids), 0))


def delete_from_bulk(job: JobContext, ds: Dataset, column: str, ids: pa.Array) -> int:
    """Rewrite the bulk files holding any of ``ids``; returns the number of rows removed."""
    token = job_part_token(job.arn, job.attempt)  # names the new files after the job
    for _attempt in range(10):
        state = ds.bulk_state()
        new_parts, removed = [], 0
        for part in state.parts:
            parts, hits = rewrite_part_without(ds, part, column, ids, token)
            new_parts.extend(parts)
            removed += hits
        if not removed:
            return 0
        job.reached("rewritten")
        if ds.records.publish(ds.arn, state.generation, new_parts):
            sweep_parts(ds, new_parts, ds.settings.file_grace_seconds)
            return removed
    raise JobFailed(f"Dataset {ds.arn} changed under the deletion ten times in a row; run it again.")


def discard_unpublished(job: JobContext) -> None:
    """The cleanup of a deletion that did not succeed: rewritten files it never published go."""
    for ds in group_datasets(job.store, job.settings, job.doc["datasetGroupArn"]).values():
        remove_unpublished_parts(ds, job.arn)


@job_body("data-deletion-job", cleanup=discard_unpublished)
def run_deletion(job: JobContext) -> dict:
    """Deleting again is harmless, so an attempt after a crash simply runs the whole deletion
    (``numDeleted`` then counts what that attempt found)."""
    ids = read_user_ids(job)
    deleted = 0
    if len(ids):
        datasets = group_datasets(job.store, job.settings, job.doc["datasetGroupArn"])
        id_list = ids.to_pylist()
        for ds in datasets.values():
            column = ds.column("USER_ID")
            if column is None:
                continue
            if job.attempt > 1:
                remove_unpublished_parts(ds, job.arn)
            deleted += delete_from_bulk(job, ds, column, ids)
            job.reached("published")
            deleted += ds.records.delete_users(ds.arn, id_list)
    log.info("data deletion %s: %d users, %d records deleted", job.arn, len(ids), deleted)
    return {"numDeleted": deleted}
