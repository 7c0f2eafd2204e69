"""The send benchmarks' SMTP sink: aiosmtpd in several processes behind one port.

Real processes and sockets on 127.0.0.1; no Django. What the campaign-send figures rest on:
every message counted once, a Message-ID received by two different processes still counted as
a duplicate, and concurrent connections spread over the processes.
"""

import smtplib
import subprocess
import sys

import pytest

from benchmarks.send_harness import CpuMeter, start_sink


def message(message_id: str) -> bytes:
    return (
        f"From: news@shop.example.com\r\nTo: a@example.com\r\nSubject: hi\r\n"
        f"Message-ID: <{message_id}@shop.example.com>\r\n\r\nHello\r\n.leading dot\r\n"
    ).encode()


@pytest.fixture
def sink():
    sink = start_sink(2, dispatch="least-connections")
    yield sink
    sink.stop()


def test_concurrent_connections_go_to_different_processes_and_duplicates_are_merged(sink):
    with smtplib.SMTP("127.0.0.1", sink.port) as first, smtplib.SMTP("127.0.0.1", sink.port) as second:
        first.sendmail("news@shop.example.com", ["a@example.com"], message("one"))
        second.sendmail("news@shop.example.com", ["b@example.com"], message("two"))
        second.sendmail("news@shop.example.com", ["a@example.com"], message("one"))  # the same row again
    assert sink.received == 3
    assert sorted(sink.per_process()) == [1, 2]
    assert sink.duplicates() == 1
    assert sink.duplicates() == 1  # asking again counts nothing twice


def test_forget_starts_the_duplicate_count_afresh(sink):
    with smtplib.SMTP("127.0.0.1", sink.port) as connection:
        connection.sendmail("news@shop.example.com", ["a@example.com"], message("again"))
        connection.sendmail("news@shop.example.com", ["a@example.com"], message("again"))
        assert sink.duplicates() == 1
        sink.forget()
        connection.sendmail("news@shop.example.com", ["a@example.com"], message("again"))
    assert sink.duplicates() == 0
    assert sink.received == 3


def test_reuseport_processes_share_the_port():
    sink = start_sink(2, dispatch="reuseport")
    try:
        for number in range(4):
            with smtplib.SMTP("127.0.0.1", sink.port) as connection:
                connection.sendmail("news@shop.example.com", ["a@example.com"], message(f"r{number}"))
        assert sink.received == 4
        assert sink.duplicates() == 0
    finally:
        sink.stop()


def test_cpu_meter_counts_a_process_first_seen_after_the_start_from_zero():
    meter = CpuMeter()
    meter.start({"busy": []})
    spin = (
        "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
        "print('spun', flush=True)\ntime.sleep(60)"
    )
    busy = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout.readline().strip() == "spun"
        meter.sample({"busy": [busy.pid]})
    finally:
        busy.kill()
        busy.wait()
    assert 0.25 <= meter.seconds()["busy"] < 2.0  # the spin and the interpreter's start
    per_message = meter.per_message(100)
    assert per_message["busy_ms"] == per_message["total_ms"]
    assert per_message["cpu_bound_messages_per_minute"] > 0
