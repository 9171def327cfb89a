"""The tasks scenario's lesson lines: what this run measured, sentence by sentence (a sentence
whose numbers are missing is left out, never guessed)."""
from __future__ import annotations


def _v(case, name):
    v = case.variants.get(name) if case else None
    return v.metrics if v is not None and not v.skipped else None


def _pools(case) -> str | None:
    rates = {n: v.metrics["tasks_per_s"] for n, v in case.variants.items()
             if not v.skipped and v.metrics.get("tasks_per_s")}
    if len(rates) < 2:
        return None
    best = max(rates, key=rates.get)
    solo = rates.get("solo")
    parts = ", ".join(f"{n} {r:.0f}" for n, r in sorted(rates.items(), key=lambda x: -x[1]))
    line = f"{case.name}-bound tasks/s: {parts}."
    if solo:
        line += f" {best} did {rates[best] / solo:.1f}× solo."
    if case.name == "cpu" and rates.get("threads_8") and rates.get("prefork_2") and solo \
            and rates["threads_8"] < rates["prefork_2"]:
        line += (f" Threads did {rates['threads_8'] / solo:.1f}× solo on CPU work and two processes "
                 f"{rates['prefork_2'] / solo:.1f}×: the GIL lets one thread run Python at a time (the gil "
                 "scenario's lesson, here in a worker pool).")
    if case.name == "io" and rates.get("threads_8") and rates.get("prefork_2"):
        line += (f" On waiting, eight threads did {rates['threads_8'] / rates['prefork_2']:.1f}× two processes: "
                 "a thread waiting on a socket releases the GIL.")
    g = _v(case, "gevent_32")
    if g and g.get("tasks_per_s") and rates.get("threads_8") and case.name == "io" \
            and g["tasks_per_s"] < rates["threads_8"]:
        line += (f" gevent ×32: {g['tasks_per_s']:.0f} tasks/s, below eight threads — the upstream call yields, but "
                 "the ledger write goes through psycopg, which gevent does not make cooperative, so each write "
                 "blocks the whole worker.")
    return line


def lines(result) -> list[str]:
    cases = {c.name: c for c in result.cases}
    out = []
    for kind in ("io", "cpu", "orm"):
        if kind in cases:
            line = _pools(cases[kind])
            out += [line] if line else []
    b = cases.get("brokers")
    if b:
        parts = [f"{n} {m['tasks_per_s']:.0f} tasks/s (p95 {m['p95_ms']:.0f} ms)" for n, v in b.variants.items()
                 if (m := _v(b, n)) and m.get("tasks_per_s") and m.get("p95_ms") is not None]
        skipped = [n for n, v in b.variants.items() if v.skipped]
        if parts:
            out.append("Brokers: " + "; ".join(parts) + "." + (f" Skipped: {', '.join(skipped)} (no rabbitmq-server)."
                                                               if skipped else ""))
    p = cases.get("prefetch")
    if p and (d := _v(p, "prefetch_4")) and (o := _v(p, "prefetch_1_acks_late")) and d.get("batches") \
            and o.get("batches"):
        one = _v(p, "prefetch_1") or {}
        line = (f"Short tasks stuck behind the long one (waited over 3/4 of its time), per batch: "
                f"{d.get('stuck', 0) / d['batches']:.1f} with the default prefetch (4 per process)")
        if one.get("batches"):
            line += f", {one.get('stuck', 0) / one['batches']:.1f} with prefetch 1"
        line += f", {o.get('stuck', 0) / o['batches']:.1f} with prefetch 1 + acks_late"
        if d.get("short_p95_ms") and o.get("short_p95_ms"):
            line += f"; short-task p95 {d['short_p95_ms']:.0f} ms vs {o['short_p95_ms']:.0f} ms"
        line += "."
        if o.get("stuck", 0) == 0 and d.get("stuck", 0) > 0:
            line += (" With acks_late a reserved message stays unacknowledged until its task ends, so a prefetch "
                     "window of 1 holds only the running task and the idle worker takes the rest.")
        out.append(line)
    c = cases.get("crash")
    if c:
        e, late, rej, idem, whole = (_v(c, n) for n in ("early_ack", "acks_late", "acks_late_reject", "idempotent",
                                                        "worker_killed"))
        if e and late and rej and idem:
            parts = [f"SIGKILL mid-task ({e.get('killed_mid_task', 0)} of {e.get('kills', 0)} kill(s) per variant hit "
                     f"a task after its credit): early ack lost {e.get('lost', 0)} task(s)"
                     + (f" ({e['gone_from_broker']} with no copy left in the broker, queued or unacknowledged)"
                        if e.get("gone_from_broker") else ""),
                     f"acks_late alone lost {late.get('lost', 0)}" + (" (the pool reports the dead process's task as "
                                                                       "failed and acks it)" if late.get("lost") else ""),
                     f"acks_late + reject_on_worker_lost lost {rej.get('lost', 0)}, ran {rej.get('reruns', 0)} again "
                     f"and credited {rej.get('credited_twice', 0)} twice (balance off by {rej.get('balance_error', 0)})",
                     f"with an idempotency key it lost {idem.get('lost', 0)} and the balance was off by "
                     f"{idem.get('balance_error', 0)}"]
            out.append("; ".join(parts) + ".")
        if whole and whole.get("redelivered_after_s") is not None and whole.get("visibility_s") \
                and whole.get("lost", 0) == 0:
            out.append(f"Whole worker killed with acks_late on Redis: its unacknowledged task came back "
                       f"{whole['redelivered_after_s']:.1f} s after the kill ({whole.get('lost', 0)} lost), restored "
                       f"by the replacement worker at start-up once the visibility timeout ({whole['visibility_s']:g} s "
                       "here) had passed — with Redis's default timeout of one hour, an hour late.")
    t = cases.get("transactions")
    if t and (a := _v(t, "inside_atomic")) and (oc := _v(t, "on_commit")):
        line = (f"Enqueued inside atomic(): {a.get('missing_rows', 0)} of {a.get('orders', 0)} tasks ran before "
                f"COMMIT and found no order; with on_commit: {oc.get('missing_rows', 0)} of {oc.get('orders', 0)}")
        db = _v(t, "django_db")
        if db and db.get("orders") and db.get("p50_ms") is not None and oc.get("p50_ms") is not None:
            line += (f"; Django's tasks framework with the database backend, enqueued inside atomic(): "
                     f"{db.get('missing_rows', 0)} of {db['orders']}")
            if db.get("missing_rows") == 0:
                line += " (its task row commits with the order: no worker can see it sooner)"
            line += (f", at an enqueue → done p50 of {db['p50_ms']:.0f} ms vs {oc['p50_ms']:.0f} ms through Celery "
                     f"(one db_worker polling every {t.params.get('db_poll_s', 1):g} s; no broker to run)")
        out.append(line + ".")
    g = cases.get("granularity")
    if g:
        parts = [f"{n} {m['items_per_s']:.0f} items/s" + (f" ({m['result_keys']} result keys stored per batch)"
                                                          if m.get("result_keys") else "")
                 for n, v in g.variants.items() if (m := _v(g, n)) and m.get("items_per_s")]
        if parts:
            out.append("Granularity: " + "; ".join(parts) + ".")
    r = cases.get("retries")
    if r and (i := _v(r, "immediate")) and (bo := _v(r, "backoff")):
        line = (f"Flaky upstream ({i.get('upstream_requests', 0)} vs {bo.get('upstream_requests', 0)} requests in "
                f"all): immediate retries reached {i.get('retry_peak_rps', 0):.0f} retries/s at peak and drained in "
                f"{i.get('drain_s', 0):.2f} s; full-jitter backoff {bo.get('retry_peak_rps', 0):.0f} retries/s and "
                f"{bo.get('drain_s', 0):.2f} s")
        if bo.get("retry_peak_rps", 0) < i.get("retry_peak_rps", 0):
            line += (f" — the same work, its retries spread {i['retry_peak_rps'] / max(bo['retry_peak_rps'], 1):.1f}× "
                     "thinner, which is what lets a struggling upstream recover")
        out.append(line + ".")
    return out
