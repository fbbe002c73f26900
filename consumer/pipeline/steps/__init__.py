"""Pipeline steps, one per module: parse -> fetch/decode -> batch -> detect -> produce -> commit
(or the transactional commit in exactly-once mode)."""

from consumer.pipeline.steps.base import ProcessingStep
from consumer.pipeline.steps.batch import BatchStep
from consumer.pipeline.steps.commit import CommitPolicy, CommitStep
from consumer.pipeline.steps.detect import DetectStep
from consumer.pipeline.steps.fetch_decode import FetchDecodeStep
from consumer.pipeline.steps.parse import ParseStep
from consumer.pipeline.steps.produce import ProduceStep
from consumer.pipeline.steps.transaction import TransactionalCommitStep

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
