"""MLflow tracking for the pipeline: one run per stage execution, tagged so it can be found from DVC and back.

A package of its own rather than calls to ``mlflow`` or Accelerate's tracker, because only rank 0 may log, nested
configs must become dotted params without silently dropping long values, and tracking must never stop a training
(an unreachable server sends the run to an offline record that is replayed later). Its parts: ``client`` (store,
client, experiments), ``flatten`` (configs as params), ``tracker`` (the run) and ``offline`` (record and replay).
"""

from lama.tracking.client import DEFAULT_TRACKING_URI, resolve_tracking_uri
from lama.tracking.flatten import CONFIG_ARTIFACT, PARAM_VALUE_LIMIT, TAG_VALUE_LIMIT, flatten_config
from lama.tracking.offline import DEFAULT_RECORD_ROOT, sync_offline_record, sync_offline_records
from lama.tracking.tracker import (
    MODEL_DIR_ARTIFACT,
    MODEL_DIR_TAG,
    TRACKING_REFERENCE,
    Tracker,
    is_rank_zero,
    log_final_scores,
    run_tags,
)

__all__ = [
    "CONFIG_ARTIFACT",
    "DEFAULT_RECORD_ROOT",
    "DEFAULT_TRACKING_URI",
    "MODEL_DIR_ARTIFACT",
    "MODEL_DIR_TAG",
    "PARAM_VALUE_LIMIT",
    "TAG_VALUE_LIMIT",
    "TRACKING_REFERENCE",
    "Tracker",
    "flatten_config",
    "is_rank_zero",
    "log_final_scores",
    "resolve_tracking_uri",
    "run_tags",
    "sync_offline_record",
    "sync_offline_records",
]
