"""Pipeline steps, one per module: parse -> fetch/decode -> batch -> detect -> produce -> commit
(or the transactional commit in exactly-once mode)."""

from consumer.steps.base import ProcessingStep
from consumer.steps.batch import BatchStep
from consumer.steps.commit import CommitPolicy, CommitStep
from consumer.steps.detect import DetectStep
from consumer.steps.fetch_decode import FetchDecodeStep
from consumer.steps.parse import ParseStep
from consumer.steps.produce import ProduceStep
from consumer.steps.transaction import TransactionalCommitStep

__all__ = [
    "BatchStep",
    "CommitPolicy",
    "CommitStep",
    "DetectStep",
    "FetchDecodeStep",
    "ParseStep",
    "ProcessingStep",
    "ProduceStep",
    "TransactionalCommitStep",
]
