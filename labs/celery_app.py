"""The lab's Celery application: `celery -A labs.celery_app worker` (the tasks scenario starts its
workers this way, one per configuration, each on its own queue).

A worker is configured from its environment — the scenario sets these per variant:
  LABS_CELERY_BROKER      broker URL (redis://… the stack's Valkey, or amqp://… a RabbitMQ)
  LABS_CELERY_BACKEND     result backend URL; unset = results are not stored (ignore_result)
  LABS_CELERY_PREFETCH    worker_prefetch_multiplier (Celery's default: 4)
  LABS_CELERY_ACKS_LATE   1 = acknowledge after the task ran (task_acks_late)
  LABS_CELERY_REJECT_LOST 1 = a task whose worker process died goes back to the queue
  LABS_CELERY_VISIBILITY  Redis: seconds before an unacknowledged message is delivered again
The producer side (`make_app`) builds an app with the same settings for one broker.
"""
from __future__ import annotations

import os

from celery import Celery

from harness.measure.celeryrig import KEY_PREFIX

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labs.settings")



def make_app(broker: str, backend: str | None = None, **conf) -> Celery:
    app = Celery("labs", broker=broker, backend=backend or None)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=not backend, worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True, worker_send_task_events=False,
        # every key the broker and the result backend write on Redis starts with `labs.` (kombu's and
        # Celery's global_keyprefix): on a shared Redis the lab finds and removes exactly its own
        broker_transport_options={"visibility_timeout": float(os.environ.get("LABS_CELERY_VISIBILITY", 3600)),
                                  "global_keyprefix": KEY_PREFIX},
        result_backend_transport_options={"global_keyprefix": KEY_PREFIX},
        result_expires=600,
    )
    app.conf.update(conf)
    return app


app = make_app(
    os.environ.get("LABS_CELERY_BROKER", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
    os.environ.get("LABS_CELERY_BACKEND"),
    worker_prefetch_multiplier=int(os.environ.get("LABS_CELERY_PREFETCH", "4")),
    task_acks_late=os.environ.get("LABS_CELERY_ACKS_LATE") == "1",
    task_reject_on_worker_lost=os.environ.get("LABS_CELERY_REJECT_LOST") == "1",
)
app.autodiscover_tasks(["labs.jobs"])
