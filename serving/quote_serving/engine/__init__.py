"""Engine backends: the port the mod runtime drives, and the implementations behind it.

`port` defines the contract (`EngineBackend`) and its errors; `embedded` runs a transformers model
in-process with its own KV cache; `sampling` turns logits rows into tokens and logprobs.
"""

from quote_serving.engine.port import (
    CapacityError,
    DuplicateSequenceError,
    EmptySequenceError,
    EngineBackend,
    EngineError,
    EngineStats,
    InvalidBatchError,
    InvalidRollbackError,
    InvalidTokenError,
    UnknownSequenceError,
)

__all__ = [
    "CapacityError",
    "DuplicateSequenceError",
    "EmptySequenceError",
    "EngineBackend",
    "EngineError",
    "EngineStats",
    "InvalidBatchError",
    "InvalidRollbackError",
    "InvalidTokenError",
    "UnknownSequenceError",
]
