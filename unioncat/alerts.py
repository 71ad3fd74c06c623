"""Failure alerts from Airflow callbacks: a clear line in the task log, and,
when `UNIONCAT_ALERT_WEBHOOK` is set, a JSON POST to it (an e-mail or IM
bridge: Slack/DingTalk/WeCom webhooks accept this shape). The webhook URL
usually carries a token, so it is never logged."""

from __future__ import annotations

import logging
import os

import requests

log = logging.getLogger("unioncat.alerts")
WEBHOOK_TIMEOUT = 5


def failure_message(context) -> str:
    ti = context["ti"]
    label = getattr(ti, "rendered_map_index", None) or context.get("library_id")
    where = f"{ti.dag_id}.{ti.task_id}" + (f"[{label or ti.map_index}]" if ti.map_index is not None and ti.map_index >= 0 else "")
    error = context.get("exception")
    reason = f"{type(error).__name__}: {error}" if error else "no exception recorded"
    return f"unioncat: {where} failed in run {context['run_id']} (try {ti.try_number}): {reason}"


def alert_task_failure(context) -> None:
    message = failure_message(context)
    log.error(message)
    url = os.environ.get("UNIONCAT_ALERT_WEBHOOK")
    if url:
        send_webhook(url, {"text": message, "dag_id": context["ti"].dag_id, "task_id": context["ti"].task_id, "run_id": context["run_id"]})


def send_webhook(url: str, payload: dict) -> bool:
    """POST the alert; an unreachable bridge is logged (without its URL), never raised."""
    try:
        response = requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT)
        response.raise_for_status()
        return True
    except requests.RequestException as error:
        log.warning("alert webhook failed: %s", type(error).__name__)
        return False
