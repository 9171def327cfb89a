"""The load generator: closed and open loop against real Gunicorn servers on loopback, exact HDR
histograms merged across bursts and Locust worker processes, and the statistics on synthetic
histograms (no server)."""
from __future__ import annotations

import pytest

from harness.errors import LabsError
from harness.measure import latency
from harness.measure.http import Server, ServerConfig
from harness.measure.load import generator_bound, summarize_bursts
from harness.measure.loadgen import LoadGenerator


def _hist(values_us):
    h = latency.histogram()
    for v in values_us:
        h.record_value(v)
    return latency.encode(h)


# -- statistics on synthetic histograms ------------------------------------------------------------------
def test_percentiles_come_from_the_merged_histogram_not_a_median_of_bursts():
    # two bursts: one fast (1 ms), one with a slow tail (5 % at 500 ms)
    fast = _hist([1000] * 1000)
    slow = _hist([1000] * 950 + [500_000] * 50)
    merged = latency.percentiles_ms(latency.merge([fast, slow]))
    assert merged["p50_ms"] == pytest.approx(1.0, rel=0.01)
    assert merged["p99_ms"] == pytest.approx(500.0, rel=0.01)  # 2.5 % of all requests took 500 ms
    per_burst_p99 = sorted(latency.percentiles_ms(latency.merge([b]))["p99_ms"] for b in (fast, slow))
    assert per_burst_p99[0] == pytest.approx(1.0, rel=0.01)  # a median of per-burst p99s would say 1 or 250 ms
    out = summarize_bursts([{"hdr": fast, "requests": 1000, "failures": 0, "rps": 100},
                            {"hdr": slow, "requests": 1000, "failures": 0, "rps": 90}])
    assert out["p99_ms"] == pytest.approx(500.0, rel=0.01) and out["requests"] == 2000
    assert out["latency_hdr"] == [fast, slow]  # kept, for compare's intervals


def test_histograms_merge_exactly_and_round_trip():
    a, b = _hist(range(1, 1001)), _hist(range(1001, 2001))
    merged = latency.merge([a, b, ""])
    assert merged.get_total_count() == 2000
    assert latency.decode(latency.encode(merged)).get_total_count() == 2000
    assert merged.get_value_at_percentile(50) == pytest.approx(1000, rel=0.002)


def test_bootstrap_interval_over_bursts_holds_the_estimate():
    import random

    rng = random.Random(1)
    bursts = [_hist([int(rng.lognormvariate(7, 0.5)) for _ in range(300)]) for _ in range(8)]
    point = latency.merge(bursts).get_value_at_percentile(95) / 1000
    lo, hi = latency.bootstrap_percentile(bursts, 95)
    assert lo <= point <= hi and hi / lo < 1.5
    assert latency.bootstrap_percentile(bursts[:1], 95) is None  # one burst: no interval


def test_the_open_loop_schedule_is_split_exactly_between_workers():
    whole = latency.schedule(300, 2.0, 0.0)
    shares = [latency.schedule(300, 2.0, 0.0, i, 3) for i in range(3)]
    assert len(whole) == 600 and sorted(t for s in shares for t in s) == whole
    assert whole[1] - whole[0] == pytest.approx(1 / 300)


def test_generator_bound_flags_cpu_and_a_schedule_it_could_not_keep():
    assert generator_bound({"generator_cpu": 0.5, "requests": 100, "late": 0}) == "no"
    assert generator_bound({"generator_cpu": 0.95, "requests": 100}) == "yes"
    assert generator_bound({"generator_cpu": 0.3, "generator_cpu_max": 0.9, "requests": 100}) == "yes"
    assert generator_bound({"generator_cpu": 0.3, "requests": 100, "late": 5}) == "yes"  # 5 % sent late


# -- against real servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(stack):
    from labs.bookstore.seed import seed_techempower

    seed_techempower(42)
    return stack


@pytest.mark.stack
def test_closed_loop_is_bounded_loopback_only_and_exact(seeded, tmp_path):
    gen = LoadGenerator(tmp_path / "locust.log")
    try:
        with pytest.raises(LabsError, match="loopback"):
            gen.burst("http://10.1.2.3:80", [("/json", 1)], 2, 1.0)
        with Server(ServerConfig("bounded", "sync", 1), tmp_path, {}) as server:
            out = gen.burst(server.url, [("/json", 1)], 2, 30.0, max_requests=50)
        assert 50 <= out["requests"] < 500 and out["duration_s"] < 10  # stopped by the request cap
        assert out["failures"] == 0 and out["mode"] == "closed"
        assert latency.decode(out["hdr"]).get_total_count() == out["requests"]  # every request, in µs
        assert out["p50_ms"] <= out["p95_ms"] <= out["p99_ms"] <= out["p99_9_ms"]
    finally:
        gen.close()
    assert gen.proc.poll() is not None


@pytest.mark.stack
def test_open_loop_sends_on_schedule_whatever_the_server_does(seeded, tmp_path):
    gen = LoadGenerator(tmp_path / "locust.log")
    try:
        with Server(ServerConfig("open", "sync", 2), tmp_path, {}) as server:
            out = gen.burst(server.url, [("/json", 1)], duration_s=1.0, rate=100)
        assert out["mode"] == "open" and out["offered_rps"] == 100
        assert out["requests"] == 100 and out["failures"] == 0  # exactly the schedule: rate × duration
        assert latency.decode(out["hdr"]).get_total_count() == 100
        assert latency.decode(out["service_hdr"]).get_total_count() == 100
    finally:
        gen.close()


@pytest.mark.stack
def test_open_loop_sees_the_queue_a_closed_loop_hides(seeded, tmp_path):
    """One sync worker on /io (a query + 20 ms upstream wait: ~40 req/s at most). A closed-loop
    user waits for each answer, so it never queues: p99 ≈ one request. Offered 2× that on a
    schedule for 1 s, requests queue and the latency from each intended send time grows to
    about the length of the overload: the tail users would see."""
    gen = LoadGenerator(tmp_path / "locust.log")
    try:
        with Server(ServerConfig("one-sync", "sync", 1), tmp_path, {}) as server:
            closed = gen.burst(server.url, [("/io", 1)], users=1, duration_s=1.0)
            capacity = closed["rps"]
            opened = gen.burst(server.url, [("/io", 1)], duration_s=1.0, rate=2 * capacity)
        assert closed["failures"] == 0 and opened["failures"] == 0
        assert opened["requests"] == int(2 * capacity * 1.0)
        assert closed["p99_ms"] < 200
        assert opened["p99_ms"] > 10 * closed["p99_ms"]  # hundreds of ms of queueing, invisible closed-loop
        service = latency.percentiles_ms(latency.decode(opened["service_hdr"]))["p99_ms"]
        # from the actual send the wait before it is lost: never longer than from the intended send, and
        # equal when the generator sent on time (then the queue is in the server, and both see it)
        assert service <= opened["p99_ms"]
    finally:
        gen.close()


@pytest.mark.stack
def test_locust_master_with_two_workers_merges_their_histograms(seeded, tmp_path):
    import psutil

    gen = LoadGenerator(tmp_path / "locust.log", processes=2)
    try:
        with Server(ServerConfig("two-gens", "sync", 2), tmp_path, {}) as server:
            opened = gen.burst(server.url, [("/json", 1)], duration_s=1.0, rate=200)
            children = psutil.Process(gen.proc.pid).children()  # started and connected by now
            assert len(children) == 2 and all("--worker" in " ".join(c.cmdline()) for c in children)
            closed = gen.burst(server.url, [("/json", 1)], users=4, duration_s=1.0)
        assert opened["processes"] == 2 and opened["requests"] == 200 and opened["failures"] == 0
        assert latency.decode(opened["hdr"]).get_total_count() == 200
        assert closed["processes"] == 2 and closed["requests"] > 0 and closed["failures"] == 0
        assert latency.decode(closed["hdr"]).get_total_count() == closed["requests"]
    finally:
        gen.close()
    assert gen.proc.poll() is not None
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
