"""redis_orm_async: an async-native ORM for Redis and Upstash Redis with Pydantic models."""

from ._audit import AuditProblem, AuditReport
from ._backend import Backend, BackendFeatures, CommandStats
from ._capabilities import Capabilities
from ._errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    NotFoundError,
    OrmError,
    QueryError,
    RelationNotLoadedError,
    SchemaError,
    TransactionConflictError,
    UniqueConstraintError,
    UnsupportedClientError,
    ValidationError,
)
from ._model import Field, Model
from ._orm import Orm, bootstrap_database, create_orm, create_orm_from_runtime
from ._repository import Repository
from ._schema import Schema
from ._transaction import Pending, Transaction, TransactionRepository
from ._writes import UNSET

__version__ = "0.1.0"

__all__ = [
    "UNSET",
    "AuditProblem",
    "AuditReport",
    "AuthenticationError",
    "Backend",
    "BackendError",
    "BackendFeatures",
    "BackendUnavailableError",
    "Capabilities",
    "CommandStats",
    "Field",
    "Model",
    "NotFoundError",
    "Orm",
    "OrmError",
    "Pending",
    "QueryError",
    "RelationNotLoadedError",
    "Repository",
    "Schema",
    "SchemaError",
    "Transaction",
    "TransactionConflictError",
    "TransactionRepository",
    "UniqueConstraintError",
    "UnsupportedClientError",
    "ValidationError",
    "__version__",
    "bootstrap_database",
    "create_orm",
    "create_orm_from_runtime",
]
