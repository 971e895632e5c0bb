"""personalize-events: PutEvents, PutUsers, PutItems, PutActions, PutActionInteractions.

Ingestion arrives with the data layer; until then the API layer answers each of these operations
with a clear NotImplementedException that names it.
"""

from __future__ import annotations


class EventOperations:
    """Event ingestion operations, one method per boto3 call (none built yet)."""
