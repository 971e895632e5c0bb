"""Exceptions named after the AWS error codes they become on the wire.

    ServiceError                      base: a code, a message, an HTTP status per service
    ├── InvalidInputException         a value breaks a rule (names the member, value and rule)
    ├── InvalidNextTokenException
    ├── LimitExceededException
    ├── ResourceAlreadyExistsException
    ├── ResourceInUseException        runtime/events: 409 where modeled
    ├── ResourceNotFoundException     runtime/events: 404
    ├── TooManyTagsException
    ├── TooManyTagKeysException
    ├── NotImplementedOperation       an operation of the model that is not built yet (501)
    ├── UnknownOperationException     no such operation or path
    ├── SerializationException        the body is not valid JSON
    ├── RequestEntityTooLarge         the body is larger than the server accepts (413)
    ├── MissingAuthenticationTokenException
    ├── UnrecognizedClientException   unknown access key
    └── InvalidSignatureException     wrong secret, or a stale timestamp

The API layer (``api/app.py``) is the one place where these turn into AWS error bodies. The HTTP
status comes from the botocore model of the service that answers when the model declares one.
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "InternalFailure"
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInputException(ServiceError):
    code = "InvalidInputException"


class InvalidNextTokenException(ServiceError):
    code = "InvalidNextTokenException"

    def __init__(self, message: str = "The token is not valid."):
        super().__init__(message)


class LimitExceededException(ServiceError):
    code = "LimitExceededException"


class ResourceAlreadyExistsException(ServiceError):
    code = "ResourceAlreadyExistsException"

    @classmethod
    def for_arn(cls, arn: str) -> "ResourceAlreadyExistsException":
        return cls(f"Another resource with Arn {arn} already exists.")


class ResourceInUseException(ServiceError):
    code = "ResourceInUseException"


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"

    @classmethod
    def for_arn(cls, arn: str) -> "ResourceNotFoundException":
        return cls(f"Resource Arn {arn} does not exist.")


class TooManyTagsException(ServiceError):
    code = "TooManyTagsException"


class TooManyTagKeysException(ServiceError):
    code = "TooManyTagKeysException"


class NotImplementedOperation(ServiceError):
    code = "NotImplementedException"
    status = 501  # not 500: botocore retries 500/502/503/504, and retrying cannot help here


class UnknownOperationException(ServiceError):
    code = "UnknownOperationException"
    status = 404


class SerializationException(ServiceError):
    code = "SerializationException"


class RequestEntityTooLarge(ServiceError):
    code = "RequestEntityTooLargeException"
    status = 413


class MissingAuthenticationTokenException(ServiceError):
    code = "MissingAuthenticationTokenException"
    status = 403


class UnrecognizedClientException(ServiceError):
    code = "UnrecognizedClientException"
    status = 403


class InvalidSignatureException(ServiceError):
    code = "InvalidSignatureException"
    status = 403


class IncompleteSignatureException(ServiceError):
    """AWS's answer to an Authorization header that is not a whole SigV4 signature."""

    code = "IncompleteSignatureException"
    status = 400
