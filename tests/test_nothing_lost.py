"""Interruptions and collisions: nothing is lost, nothing looks complete that is not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slm_helpers.checkpoint import load_history
from slm_helpers.data import _preparation_lock, prepare_dataset, read_info, verify_dataset

from conftest import requires_tokenizer

pytestmark = requires_tokenizer


def _interruptible() -> None:
    """In the child, before exec: Ctrl-C's default action. A suite started in the background by
    a shell without job control (`cmd &` in a script) inherits SIGINT ignored, and Python then
    never raises KeyboardInterrupt: these tests would see a process that cannot be interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(module: str, *args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", module, "--no-progress", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=_interruptible, **kwargs)


def wait_for(condition, proc: subprocess.Popen, what: str, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert proc.poll() is None, f"the process ended before {what}: {proc.stderr.read()}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def finish(proc: subprocess.Popen, seconds: float = 120) -> tuple[str, str]:
    """stdout and stderr of ``proc``; if it hangs, its threads' stacks (faulthandler) in the failure."""
    try:
        return proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate()
        raise AssertionError(f"the process hung after the signal; its stacks:\n{err[-5000:]}") from None


def contents(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


DATASET_FILES = ("meta.json", "train.bin", "validation.bin")


def test_ctrl_c_during_preparation_exits_130_and_keeps_the_earlier_dataset(tmp_path):
    out = tmp_path / "data"
    earlier = prepare_dataset("synthetic", out, train_stories=200, validation_stories=20, num_workers=1, progress=False)
    before = contents(out, DATASET_FILES)
    # A terminal's Ctrl-C reaches the whole process group: the main process and its workers.
    proc = start("slm_helpers.data", "--source", "synthetic", "--train-stories", 400_000, "--validation-stories", 1000,
                 "--workers", 2, "--overwrite", "--out-dir", out, start_new_session=True)
    wait_for(lambda: (out / "train.bin.tmp").exists() and (out / "train.bin.tmp").stat().st_size > 0, proc,
             "tokens were written")
    os.killpg(proc.pid, signal.SIGINT)
    out_text, err = finish(proc)
    assert proc.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: the new tokens were only in *.bin.tmp files"), err
    assert "Traceback" not in err + out_text
    assert contents(out, DATASET_FILES) == before  # the earlier dataset is untouched...
    assert verify_dataset(read_info(out)) == earlier  # ...and still complete
    assert (out / "train.bin.tmp").exists()  # the partial new tokens are left as they were, under a .tmp name


def test_ctrl_c_during_a_first_preparation_leaves_nothing_that_looks_complete(tmp_path):
    out = tmp_path / "data"
    proc = start("slm_helpers.data", "--source", "synthetic", "--train-stories", 400_000, "--workers", 2,
                 "--out-dir", out, start_new_session=True)
    wait_for(lambda: (out / "train.bin.tmp").exists() and (out / "train.bin.tmp").stat().st_size > 0, proc,
             "tokens were written")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = finish(proc)
    assert proc.returncode == 130 and "Traceback" not in err
    assert read_info(out) is None and not (out / "train.bin").exists()


def test_a_second_preparation_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "data"
    prepare_dataset("synthetic", out, train_stories=50, validation_stories=5, num_workers=1, progress=False)
    before = contents(out, DATASET_FILES)
    with _preparation_lock(out):  # this process is "the first preparation"
        proc = subprocess.run([sys.executable, "-m", "slm_helpers.data", "--no-progress", "--source", "synthetic",
                               "--train-stories", "60", "--overwrite", "--out-dir", str(out)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: {out} is being prepared right now by process {os.getpid()}: wait for it to "
                                   "finish, or choose another folder")
    assert contents(out, DATASET_FILES) == before  # --overwrite deleted nothing another process was writing


def test_sigint_during_training_exits_130_says_where_and_resume_finishes(small_dataset, tmp_path):
    out = tmp_path / "run"
    args = ["--preset", "ci", "--max-iters", 30, "--data-dir", small_dataset.path, "--out-dir", out]
    proc = start("slm_helpers.train", *args)
    history = out / "history.json"
    wait_for(lambda: history.exists() and json.loads(history.read_text())[-1]["step"] >= 10, proc, "step 10")
    proc.send_signal(signal.SIGINT)
    out_text, err = finish(proc)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err + out_text, err
    step = int(lines[0].split()[3].replace(",", ""))
    assert lines[0] == f"interrupted at step {step:,} of 30; --resume continues" and 10 <= step < 30
    assert "done:" not in out_text
    resumed = start("slm_helpers.train", *args, "--resume")
    out_text, err = finish(resumed, 300)
    assert resumed.returncode == 0, err
    assert f"resumed from {out / 'checkpoint.pt'} at step {step:,}" in out_text and "done: 30 steps" in out_text
    assert load_history(out)[-1]["step"] == 30


def test_a_txt_without_separators_is_read_one_story_per_line(tmp_path):
    lines = [f"Story number {i}: Tom had {i} red balls and he was happy." for i in range(60)]
    source = tmp_path / "stories.txt"
    source.write_text("\n".join(lines) + "\n")
    notices = []
    info = prepare_dataset(source, tmp_path / "data", num_workers=1, progress=False, log=notices.append)
    assert notices == [f"{source} has no <|endoftext|> separators: taking one story per line"]
    assert info.splits["train"].stories + info.splits["validation"].stories == 60
    assert min(info.splits["train"].stories, info.splits["validation"].stories) > 0


@pytest.mark.parametrize("text", ["One story.<|endoftext|>Another story.<|endoftext|>",
                                  "A story\nthat spans two lines.<|endoftext|>Another one.<|endoftext|>"])
def test_a_txt_with_separators_keeps_multi_line_stories_whole(tmp_path, text):
    from slm_helpers.data import _read_local_file

    source = tmp_path / "stories.txt"
    source.write_text(text)
    notices = []
    stories = [s for s in _read_local_file(source, notices.append) if s]
    assert stories == [s.strip() for s in text.split("<|endoftext|>") if s.strip()] and notices == []
