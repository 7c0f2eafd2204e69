"""The shared benchmark harness: timing, JSON output, machine facts, scratch-name guard."""

import json
import time

import pytest

from benchmarks.common import emit, machine_info, peak_memory_mb, scratch_database, timed


def test_timed_fills_in_wall_and_cpu_time_when_the_block_ends():
    with timed("nap") as timing:
        assert timing.seconds == 0.0
        time.sleep(0.05)
        sum(range(200_000))
    assert timing.label == "nap"
    assert 0.05 <= timing.seconds < 5
    assert 0 < timing.cpu_seconds <= timing.seconds + 0.05
    assert set(timing.as_dict()) == {"seconds", "cpu_seconds"}


def test_timed_still_records_when_the_block_fails():
    with pytest.raises(RuntimeError), timed() as timing:
        time.sleep(0.01)
        raise RuntimeError("boom")
    assert timing.seconds >= 0.01


def test_emit_prints_one_json_document_and_keeps_a_copy(tmp_path, capsys):
    result = emit({"benchmark": "probe", "rows": 3}, name="probe", out_dir=tmp_path)
    printed = json.loads(capsys.readouterr().out)
    assert printed == result == json.loads((tmp_path / "probe.json").read_text())
    assert printed["rows"] == 3 and "recorded_at" in printed


def test_machine_info_names_the_machine_and_its_load():
    info = machine_info()
    assert info["logical_cpus"] >= 1 and 1 <= info["usable_cpus"] <= info["logical_cpus"]
    assert info["memory_gb"] > 0
    assert len(info["load_average"]) == 3
    assert info["python"].startswith("3.")
    json.dumps(info)
    assert peak_memory_mb() > 10


@pytest.mark.parametrize("name", ["reachly", "h_syn", "bench-synth", "Bench_x", "postgres", "bench_"])
def test_scratch_database_refuses_names_that_could_hold_real_data(name):
    with pytest.raises(ValueError, match="bench_ or scratch_"), scratch_database(name):
        pass
