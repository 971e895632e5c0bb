"""personalize-runtime: GetRecommendations, GetPersonalizedRanking, GetActionRecommendations.

Serving arrives with real-time campaigns; until then the API layer answers each of these
operations with a clear NotImplementedException that names it.
"""

from __future__ import annotations


class RuntimeOperations:
    """Runtime operations, one method per boto3 call (none built yet)."""
