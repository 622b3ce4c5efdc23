"""A Python client of the mldeploy HTTP API: ``from mldeploy_client import Client``.

It needs only ``requests``, ``numpy`` and ``pandas``; it imports neither Flask nor the modeler, so
it works in a notebook far from the server.
"""

from mldeploy_client.client import (
    ApiError,
    AuthenticationError,
    Client,
    ConnectionFailed,
    FieldError,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    ServiceUnavailable,
)

__all__ = [
    "ApiError",
    "AuthenticationError",
    "Client",
    "ConnectionFailed",
    "FieldError",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
]
