"""weft's Python client: the Orchestrator service through Debian's
python3-grpcio, with plans built in Python, values as native types, errors
with their google.rpc details decoded, and task watches that resume.

    from weft_client import Client, call, parallel

    with Client("127.0.0.1:50051", timeout=30) as weft:
        outcome = weft.run(parallel(call("value", id="a", value=42),
                                    call("sleep", id="b", duration="0.2s", value=0.5)))
        outcome.value  # {"a": 42, "b": 0.5}

It needs the stubs generate.sh makes, on PYTHONPATH (see README.md).
"""

from .client import TERMINAL_TASK_STATES, Client, Resolution, is_terminal
from .errors import WeftError
from .outcomes import Outcome
from .plans import (as_plan, call, fmt, lazy, lazy_value_name, literal, map_over, offload,
                    parallel, race, ref, retry_policy, sequence, task_name)
from .values import to_duration, to_python, to_struct, to_value

__all__ = [
    "Client", "Outcome", "Resolution", "TERMINAL_TASK_STATES", "WeftError", "as_plan", "call",
    "fmt", "is_terminal", "lazy", "lazy_value_name", "literal", "map_over", "offload", "parallel",
    "race",
    "ref", "retry_policy",
    "sequence", "task_name", "to_duration", "to_python", "to_struct", "to_value",
]
