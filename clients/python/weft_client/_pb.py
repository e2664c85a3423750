"""The generated modules (clients/python/generate.sh), imported in one place
so that a missing generation fails with what to do about it."""

try:
    from google.rpc import error_details_pb2, status_pb2
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from weft.v1 import (lazy_pb2, orchestrator_pb2, orchestrator_pb2_grpc, outcome_pb2,
                         plan_pb2, task_pb2)
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "weft_client needs the generated stubs: run clients/python/generate.sh OUT_DIR "
        "and put OUT_DIR on PYTHONPATH (%s)" % e) from e

__all__ = ["error_details_pb2", "health_pb2", "health_pb2_grpc", "lazy_pb2", "orchestrator_pb2",
           "orchestrator_pb2_grpc", "outcome_pb2", "plan_pb2", "status_pb2", "task_pb2"]
