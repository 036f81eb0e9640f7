"""redis_orm_async: an async-native ORM for Redis and Upstash Redis with Pydantic models."""

from ._backends.protocol import Backend, BackendFeatures, CommandStats
from ._capabilities import Capabilities
from ._engine.audit import AuditProblem, AuditReport, RepairReport
from ._errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    DataValidationError,
    EvictionPolicyWarning,
    IndexNotBuiltError,
    NotFoundError,
    OrmError,
    QueryError,
    RateLimitedError,
    RelationNotLoadedError,
    SchemaError,
    TransactionConflictError,
    UniqueConstraintError,
    UnsupportedClientError,
    ValidationError,
)
from ._model.expressions import (
    Col,
    Condition,
    Order,
    and_,
    asc,
    col,
    contains,
    desc,
    in_,
    not_,
    or_,
    startswith,
)
from ._model.ids import new_hex_id, new_ulid
from ._model.model import Field, Model
from ._model.relations import (
    BelongsTo,
    HasMany,
    HasOne,
    ManyToMany,
    Relation,
    belongs_to,
    has_many,
    has_one,
    many_to_many,
)
from ._model.schema import Schema
from ._orm import Orm, bootstrap_database, create_orm, create_orm_from_runtime
from ._query.planner import Plan
from ._query.ttl import UNSET, Unset
from ._ratelimit import Rate, RateLimitBucket, RateLimiter, RateLimitStatus
from ._repository import Repository
from ._session import OrmSession
from ._transaction import Pending, Transaction, TransactionRepository

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
    "BelongsTo",
    "Capabilities",
    "Col",
    "CommandStats",
    "Condition",
    "DataValidationError",
    "EvictionPolicyWarning",
    "Field",
    "HasMany",
    "HasOne",
    "IndexNotBuiltError",
    "ManyToMany",
    "Model",
    "NotFoundError",
    "Order",
    "Orm",
    "OrmError",
    "OrmSession",
    "Pending",
    "Plan",
    "QueryError",
    "Rate",
    "RateLimitBucket",
    "RateLimitStatus",
    "RateLimitedError",
    "RateLimiter",
    "Relation",
    "RelationNotLoadedError",
    "RepairReport",
    "Repository",
    "Schema",
    "SchemaError",
    "Transaction",
    "TransactionConflictError",
    "TransactionRepository",
    "UniqueConstraintError",
    "Unset",
    "UnsupportedClientError",
    "ValidationError",
    "__version__",
    "and_",
    "asc",
    "belongs_to",
    "bootstrap_database",
    "col",
    "contains",
    "create_orm",
    "create_orm_from_runtime",
    "desc",
    "has_many",
    "has_one",
    "in_",
    "many_to_many",
    "new_hex_id",
    "new_ulid",
    "not_",
    "or_",
    "startswith",
]
