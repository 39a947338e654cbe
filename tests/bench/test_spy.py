"""bench.spy turns py-spy's collapsed stacks into per-thread and per-part shares."""

from __future__ import annotations

from bench.spy import summarize

_W = "thread (0x1): cairn-writer;_bootstrap (/usr/lib/python3.11/threading.py:1002);GroupCommitter._run (/r/engine/pipeline.py:681)"
_BATCH = (
    _W
    + ";GroupCommitter._process (/r/engine/pipeline.py:688);MessagePipeline.process_batch (/r/engine/pipeline.py:258)"
)
_HANDLE = (
    _BATCH
    + ";MessagePipeline._process_isolated (/r/engine/pipeline.py:306);VxuHandler.handle (/r/handlers/vxu.py:120)"
)

RAW = "\n".join(
    [
        # waiting for the next batch: 40 samples
        _W
        + ";Queue.get (/usr/lib/python3.11/queue.py:171);Condition.wait (/usr/lib/python3.11/threading.py:327) 40",
        # validating: 30 samples
        _HANDLE + ";VxuValidator.validate (/r/handlers/vxu_validation.py:200) 30",
        # matching, inside it the candidate query: 20 samples
        _HANDLE
        + ";VxuHandler._store (/r/handlers/vxu.py:160);PatientMatcher.find (/r/handlers/matching.py:90)"
        + ";PatientRepository.find_match_candidates (/r/storage/database.py:700) 20",
        # committing: 10 samples
        _BATCH
        + ";Connection.commit (/v/sqlalchemy/engine/base.py:2611)"
        + ";DefaultDialect.do_commit (/v/sqlalchemy/engine/default.py:953) 10",
        # the reactor: 90 idle, 10 reading a socket
        "thread (0x2): MainThread;EPollReactor.doPoll (/v/twisted/internet/epollreactor.py:211) 90",
        "thread (0x2): MainThread;MllpProtocol.dataReceived (/r/listeners/mllp.py:177) 10",
        "not a stack line",
    ]
)


def _share(lines: list[str], label: str) -> float:
    for line in lines:
        if line.strip().endswith(label) and "%" in line:
            return float(line.split("%")[0])
    raise AssertionError(f"no line for {label!r} in {lines}")


def test_thread_states_are_shares_of_each_threads_samples() -> None:
    lines = summarize(RAW)
    assert "thread cairn-writer (100 samples): busy 60 %, waiting 40 %" in lines
    assert "thread MainThread (100 samples): waiting 90 %, busy 10 %" in lines


def test_parts_are_inclusive_shares_of_the_writer() -> None:
    lines = summarize(RAW)
    assert _share(lines, "group commit (one transaction of queued messages)") == 60.0
    assert _share(lines, "validation") == 30.0
    assert _share(lines, "patient matching") == 20.0
    assert _share(lines, "candidate query") == 20.0
    assert _share(lines, "storing patient and doses") == 20.0
    assert _share(lines, "commit (fsync)") == 10.0
    assert _share(lines, "read_vxu: typed views of the message") == 0.0


def test_top_functions_count_a_function_once_per_sample() -> None:
    lines = summarize(RAW, top=3)
    top = lines[
        lines.index("cairn-writer, top 3 of the project's functions (inclusive):") + 1 :
    ]
    assert top[0].endswith("_run (engine/pipeline.py)")
    assert _share(top, "_run (engine/pipeline.py)") == 100.0
    assert _share(top, "process_batch (engine/pipeline.py)") == 60.0
