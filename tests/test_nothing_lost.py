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
import torch

from slm_helpers.checkpoint import load_checkpoint, load_history
from slm_helpers.data import TokenDataset, prepare_dataset, read_info
from slm_helpers.data.prepare import INTERRUPTED, LOCK_FILE
from slm_helpers.errors import CheckpointError, DataError
from slm_helpers.folders import hold

import quick_cli
from conftest import command_env, requires_tokenizer

pytestmark = requires_tokenizer


def _interruptible() -> None:
    """In the child, before exec: Ctrl-C's default action. A suite started in the background by
    a shell without job control (`cmd &` in a script) inherits SIGINT ignored, and Python then
    never raises KeyboardInterrupt: these tests would see a process that cannot be interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


ENV = command_env()  # the runs a test compares use the same threads: the same last bits of a loss


def start(module: str, *args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", module, "--no-progress", *map(str, args)],
                            env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=_interruptible, **kwargs)


def run(module: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m module --no-progress args`` to its end, forked from a process that imported torch once
    (quick_cli): for the commands no test signals."""
    return quick_cli.run([module, "--no-progress", *map(str, args)], ENV, cwd=cwd, timeout=120)


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
    assert TokenDataset.open(out).info == earlier  # ...and still complete
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
    with hold(out, LOCK_FILE, "being prepared", DataError):  # this process is "the first preparation"
        proc = subprocess.run([sys.executable, "-m", "slm_helpers.data", "--no-progress", "--source", "synthetic",
                               "--train-stories", "60", "--overwrite", "--out-dir", str(out)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: {out} is being prepared right now by process {os.getpid()}: wait for it to "
                                   "finish, or choose another folder")
    assert contents(out, DATASET_FILES) == before  # --overwrite deleted nothing another process was writing


def signal_mid_run(proc: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to a run however fast it goes: stopped first, so it cannot finish before the
    signal arrives; the signal waits, and acts as the run continues."""
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signum)
    proc.send_signal(signal.SIGCONT)


def test_sigint_during_training_exits_130_says_where_and_resume_finishes(small_compact_dataset, tmp_path):
    out = tmp_path / "run"
    args = ["--preset", "ci", "--max-iters", 40, "--eval-interval", 10, "--data-dir", small_compact_dataset.path,
            "--out-dir", out]
    proc = start("slm_helpers.train", *args)
    history = out / "history.json"
    wait_for(lambda: history.exists() and json.loads(history.read_text())[-1]["step"] >= 10, proc, "step 10")
    signal_mid_run(proc, signal.SIGINT)
    out_text, err = finish(proc)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err + out_text, err
    step = int(lines[0].split()[3].replace(",", ""))
    assert lines[0] == f"interrupted at step {step:,} of 40; --resume continues" and 10 <= step < 40
    assert "done:" not in out_text
    resumed = run("slm_helpers.train", *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out / 'checkpoint.pt'} at step {step:,}" in resumed.stdout
    assert "done: 40 steps" in resumed.stdout
    assert load_history(out)[-1]["step"] == 40


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
    from slm_helpers.data.sources import _read_local_file

    source = tmp_path / "stories.txt"
    source.write_text(text)
    notices = []
    stories = [s for s in _read_local_file(source, notices.append) if s]
    assert stories == [s.strip() for s in text.split("<|endoftext|>") if s.strip()] and notices == []


# ----------------------------------------------------------------------------- one folder, one process


def test_a_second_run_into_a_folder_in_use_is_refused_and_the_first_finishes_untouched(small_compact_dataset, tmp_path):
    args = ["--preset", "ci", "--max-iters", 6, "--eval-interval", 3, "--data-dir", small_compact_dataset.path]
    first = start("slm_helpers.train", *args, "--out-dir", tmp_path / "run")
    wait_for(lambda: (tmp_path / "run" / "history.json").exists(), first, "the first run's first evaluation")
    first.send_signal(signal.SIGSTOP)  # held mid-run, however fast or busy the machine: it cannot finish meanwhile
    try:
        # A fresh run, a replacement and a resume, each while the first is writing: all refused, naming it.
        for extra in ([], ["--overwrite"], ["--resume"]):
            second = quick_cli.run(["slm_helpers.train", "--no-progress", *map(str, args), "--out-dir",
                                    str(tmp_path / "run"), *extra], ENV, cwd=tmp_path, timeout=120)
            assert second.returncode == 1, (extra, second.stderr)
            assert second.stderr == (f"error: {tmp_path / 'run'} is in use by a training run right now by process "
                                     f"{first.pid}: wait for it to finish, or choose another folder\n"), extra
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = finish(first, 300)
    assert first.returncode == 0 and "done: 6 steps" in out, err
    reference = quick_cli.run(["slm_helpers.train", "--no-progress", *map(str, args), "--out-dir",
                               str(tmp_path / "reference")], ENV, cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    assert load_history(tmp_path / "run") == load_history(tmp_path / "reference")  # untouched by the others
    assert not (tmp_path / "run" / ".run.lock").exists()


def test_sigterm_during_training_saves_like_ctrl_c_and_resume_finishes(small_compact_dataset, tmp_path):
    out = tmp_path / "run"
    args = ["--preset", "ci", "--max-iters", 40, "--eval-interval", 10, "--data-dir", small_compact_dataset.path,
            "--out-dir", out]
    proc = start("slm_helpers.train", *args)
    wait_for(lambda: (out / "history.json").exists() and json.loads((out / "history.json").read_text())[-1]["step"]
             >= 10, proc, "step 10")
    signal_mid_run(proc, signal.SIGTERM)
    out_text, err = finish(proc)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at step ") and "Traceback" not in err + out_text
    step = int(lines[0].split()[3].replace(",", ""))
    assert step >= 10 and load_checkpoint(out / "checkpoint.pt")["step"] == step  # the steps since are kept
    resumed = run("slm_helpers.train", *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0 and "done: 40 steps" in resumed.stdout, resumed.stderr


@pytest.mark.parametrize("to", ["the main process", "the whole group"])
def test_sigterm_during_a_parallel_preparation_ends_quietly(tmp_path, to):
    out = tmp_path / "data"
    proc = start("slm_helpers.data", "--source", "synthetic", "--train-stories", 400_000, "--workers", 2,
                 "--out-dir", out, start_new_session=True)
    wait_for(lambda: (out / "train.bin.tmp").exists() and (out / "train.bin.tmp").stat().st_size > 0, proc,
             "tokens were written")
    if to == "the main process":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
    out_text, err = finish(proc)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == [INTERRUPTED] and out_text == ""  # no worker's BrokenPipeError
    assert read_info(out) is None and not (out / ".prepare.lock").exists()
    wait_until_gone(proc.pid)  # no worker is left behind


def wait_until_gone(group: int, seconds: float = 20) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        assert time.time() < deadline, "a worker process outlived the command"
        time.sleep(0.1)


# ----------------------------------------------------------------------------- damaged files have a way out


def test_overwrite_replaces_a_damaged_dataset(tmp_path):
    out = tmp_path / "data"
    prepare_dataset("synthetic", out, train_stories=50, validation_stories=5, num_workers=1, progress=False)
    (out / "meta.json").write_text('{"source": "synth')
    args = [sys.executable, "-m", "slm_helpers.data", "--no-progress", "--source", "synthetic", "--train-stories", "50",
            "--validation-stories", "5", "--out-dir", str(out)]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "prepare it again with --overwrite" in refused.stderr
    replaced = subprocess.run([*args, "--overwrite"], capture_output=True, text=True, timeout=120)
    assert replaced.returncode == 0, replaced.stderr
    assert TokenDataset.open(out).info.splits["train"].stories == 50


def test_resume_writes_the_damaged_history_of_a_finished_run_again(small_compact_dataset, tmp_path):
    out = tmp_path / "run"
    args = ["--preset", "ci", "--max-iters", 4, "--data-dir", small_compact_dataset.path, "--out-dir", out]
    assert run("slm_helpers.train", *args, cwd=tmp_path).returncode == 0
    history = load_history(out)
    (out / "history.json").write_text("[{")
    with pytest.raises(CheckpointError, match="slm_helpers.train --resume with the same settings writes it again"):
        load_history(out)
    resumed = run("slm_helpers.train", *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0 and "already finished: 4 of 4 steps" in resumed.stdout, resumed.stderr
    assert load_history(out) == history


def test_a_failed_preparation_leaves_no_lock_and_no_partial_files(tmp_path):
    source = tmp_path / "s.jsonl"
    source.write_text("".join(f'{{"text": "Story {i}: Tom had a ball."}}\n' for i in range(3000)) + '{"text": 42}\n')
    with pytest.raises(DataError, match="'text' must be a string"):
        prepare_dataset(source, tmp_path / "data", num_workers=1, progress=False)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []


def test_a_disk_that_fills_up_during_a_save_is_one_clear_line(small_dataset, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # 30 MB: step 0's best weights and checkpoint (13 MB each: AdamW has no state yet) fit; at step 4 the new best
    # weights, written beside the old ones until they are whole, do not.
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = run("slm_helpers.train", "--preset", "ci", "--max-iters", 4, "--data-dir", small_dataset.path,
                   "--out-dir", disk / "run", cwd=tmp_path)
        err = proc.stderr
        assert proc.returncode == 1 and "Traceback" not in err + proc.stdout
        assert err == (f"error: no space left on the device while writing {disk / 'run' / 'best_model_params.pt'}: "
                       "free some space, then run the same command again\n")
        files = sorted(p.name for p in (disk / "run").iterdir())
        assert files == ["best_model_params.pt", "checkpoint.pt", "history.json"]  # no .tmp, no lock left
        assert load_checkpoint(disk / "run" / "checkpoint.pt")["step"] == 0  # step 0's files, whole
        assert torch.load(disk / "run" / "best_model_params.pt", weights_only=True)["step"] == 0
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@requires_tokenizer
def test_a_closed_pipe_ends_the_story_quietly(small_compact_dataset, tmp_path):
    assert run("slm_helpers.train", "--preset", "ci", "--max-iters", 2, "--data-dir", small_compact_dataset.path,
               "--out-dir", tmp_path / "run", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "slm_helpers.generate", "--checkpoint",
                             str(tmp_path / "run" / "best_model_params.pt"), "--max-new-tokens", "2000",
                             "--prompt", "Once upon a time"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(20)) == 20
    proc.stdout.close()  # as `| head -c 20` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert err == "" and proc.returncode == 141  # as cat: 128 + SIGPIPE
