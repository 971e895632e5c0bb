"""openpersonalize: the Amazon Personalize APIs, self-hosted.

Point unmodified boto3 or AWS CLI code at ``openpersonalize serve`` with ``endpoint_url``.
"""

__version__ = "0.1.0"
