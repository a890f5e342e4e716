"""MLflow tracking for the pipeline: one run per stage execution, tagged so it can be found from DVC and back.

A package of its own rather than calls to ``mlflow`` or Accelerate's tracker, because only rank 0 may log, nested
configs must become dotted params without silently dropping long values, and tracking must never stop a training
(an unreachable server sends the run to an offline record that is replayed later). Its parts: ``client`` (store,
client, experiments), ``flatten`` (configs as params), ``tracker`` (the run), ``offline`` (record and replay),
``model_runs`` (what later steps add to a training's run: scores, the registered model, the report) and ``runs``
(finding runs by state, to end those a killed process left running).
"""

from lama.tracking.client import DEFAULT_TRACKING_URI, resolve_tracking_uri
from lama.tracking.flatten import CONFIG_ARTIFACT, PARAM_VALUE_LIMIT, TAG_VALUE_LIMIT, flatten_config
from lama.tracking.model_runs import (
    MODEL_ARTIFACT,
    REGISTERED_MODEL_TAG,
    attach_report,
    log_final_scores,
    publish_model,
)
from lama.tracking.offline import DEFAULT_RECORD_ROOT, sync_offline_record, sync_offline_records
from lama.tracking.tracker import (
    MODEL_DIR_ARTIFACT,
    MODEL_DIR_TAG,
    TRACKING_REFERENCE,
    Tracker,
    is_rank_zero,
    run_tags,
)

__all__ = [
    "CONFIG_ARTIFACT",
    "DEFAULT_RECORD_ROOT",
    "DEFAULT_TRACKING_URI",
    "MODEL_ARTIFACT",
    "MODEL_DIR_ARTIFACT",
    "MODEL_DIR_TAG",
    "PARAM_VALUE_LIMIT",
    "REGISTERED_MODEL_TAG",
    "TAG_VALUE_LIMIT",
    "TRACKING_REFERENCE",
    "Tracker",
    "attach_report",
    "flatten_config",
    "is_rank_zero",
    "log_final_scores",
    "publish_model",
    "resolve_tracking_uri",
    "run_tags",
    "sync_offline_record",
    "sync_offline_records",
]
