"""The NEXUS Scheduler's Python client (`NexusClient`) and the `nexus` command (`cli`)."""

from nexus_client.client import DEFAULT_URL, NexusClient
from nexus_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidInput,
    NexusError,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)
from nexus_client.models import Execution, Job, JobCreate, Page

__all__ = [
    "DEFAULT_URL",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Execution",
    "Forbidden",
    "InvalidInput",
    "Job",
    "JobCreate",
    "NexusClient",
    "NexusError",
    "NotFound",
    "Page",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "Unavailable",
]
