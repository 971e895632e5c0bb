"""The control plane: one method per operation, named after the boto3 call, grouped by family.

An operation method takes the request context and the validated parameters and returns the
response members; the API layer shapes that dict with the botocore model. To add an operation,
add its method to the family class it belongs to; ``ControlPlane`` finds it by name.
"""

from __future__ import annotations

from .batch import BatchInferenceJobOperations, BatchSegmentJobOperations
from .catalogue import CatalogueOperations
from .data_jobs import DataDeletionJobOperations, DatasetExportJobOperations, DatasetImportJobOperations
from .datasets import DatasetGroupOperations, DatasetOperations, SchemaOperations
from .group_resources import EventTrackerOperations, FilterOperations, MetricAttributionOperations
from .serving import CampaignOperations, RecommenderOperations
from .solutions import SolutionOperations, SolutionVersionOperations
from .tags import TagOperations


class ControlPlane(
    DatasetGroupOperations,
    SchemaOperations,
    DatasetOperations,
    DatasetImportJobOperations,
    DatasetExportJobOperations,
    DataDeletionJobOperations,
    SolutionOperations,
    SolutionVersionOperations,
    CampaignOperations,
    RecommenderOperations,
    EventTrackerOperations,
    FilterOperations,
    MetricAttributionOperations,
    BatchInferenceJobOperations,
    BatchSegmentJobOperations,
    TagOperations,
    CatalogueOperations,
):
    """All control-plane operations."""
