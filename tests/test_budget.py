"""Training on a time budget: duration parsing, the clock-driven schedule, and a run that ends on time."""

import json

import pytest
import torch

from nac_hash.training import precision
from nac_hash.training.budget import BudgetClock, parse_duration
from nac_hash.training.config import load_config
from nac_hash.training.optim import clock_warmup_cosine, warmup_cosine_factor
from nac_hash.training.precision import training_dtype
from nac_hash.training.train import train


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1.5h", 5400), ("45", 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0m", "-5m", "30 minutes", "m"])
def test_bad_durations_are_refused_naming_the_option(text):
    with pytest.raises(ValueError, match="time_budget"):
        load_config(None, {"time_budget": text})


def test_clock_schedule_warms_up_decays_and_ends_at_zero():
    share = [0.0]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = clock_warmup_cosine(optimizer, lambda: share[0], warmup=0.1)
    rates = {}
    for share[0] in (0.05, 0.1, 0.55, 1.0):
        optimizer.step()
        scheduler.step()
        rates[share[0]] = optimizer.param_groups[0]["lr"]
    assert rates == pytest.approx({0.05: 1.0, 0.1: 2.0, 0.55: 1.0, 1.0: 0.0})
    assert warmup_cosine_factor(0.0, 0.0) == 1.0  # no warm-up: start at the base rate


def test_clock_counts_saved_time_and_stops_before_the_budget():
    clock = BudgetClock(budget_s=10.0)
    clock.restore(7.0)
    assert 7.0 <= clock.elapsed_s < 8.0 and clock.fits_another_epoch()
    clock.record_epoch(2.5)
    assert clock.fits_another_epoch() and clock.epochs_left() == 1
    clock.reserve_s = 2.0  # the final evaluation's share
    assert not clock.fits_another_epoch() and clock.epochs_left() == 0
    assert clock.fraction() == pytest.approx(7 / 8, abs=0.05)  # of the 8 s left for training


def test_clock_pace_leaves_out_the_first_epochs_one_off_costs():
    clock = BudgetClock(budget_s=100.0)
    clock.record_epoch(9.0)  # compiling, warming up
    assert clock.mean_epoch_s() == 9.0
    clock.record_epoch(1.0)
    clock.record_epoch(2.0)
    assert clock.mean_epoch_s() == 1.5


class TickingClock:
    """A clock that moves on 10 ms each time it is read: a run on it depends on its own steps, not on the machine."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        self.seconds += 0.01
        return self.seconds


def test_training_on_a_time_budget_ends_on_time_with_the_model_written(class_folders, tmp_path):
    settings = {"dataset": "folder", "data_root": str(class_folders), "queries": 4, "train_images": 8,
                "arch": "cnn_small", "bits": 16, "batch_size": 12, "device": "cpu", "time_budget": "3s"}
    runs = []
    for name in ("a", "b"):
        clock = TickingClock()
        path = train(load_config(None, {**settings, "out_dir": str(tmp_path / name)}), progress=False, now=clock)
        runs.append((json.loads(path.with_suffix(".json").read_text()), clock.seconds))
    (sidecar, seconds), (again, _) = runs
    # The default 2,000 epochs would take far longer on this clock; the budget stops the run within it, with the
    # final evaluation in it too, and the same clock gives the same run.
    assert 2 <= sidecar["epochs_completed"] < 2000 and seconds <= 3.0
    assert sidecar["history"][-1]["epoch"] == sidecar["epochs_completed"]
    assert again["epochs_completed"] == sidecar["epochs_completed"]


def test_a_budget_spent_before_the_first_epoch_is_an_error_not_a_missing_model(class_folders, tmp_path):
    settings = {"dataset": "folder", "data_root": str(class_folders), "queries": 4, "train_images": 8,
                "arch": "cnn_small", "bits": 16, "batch_size": 12, "device": "cpu", "time_budget": "3s",
                "out_dir": str(tmp_path / "run")}
    slow_clock = iter(range(0, 10**6, 100)).__next__  # 100 s pass at each reading
    with pytest.raises(ValueError, match="ran out before the first epoch"):
        train(load_config(None, settings), progress=False, now=slow_clock)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_precision_choices():
    assert training_dtype(torch.device("cpu"), "fp32") is None
    assert training_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
    assert training_dtype(torch.device("cuda"), "auto") is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        load_config(None, {"precision": "fp16"})


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_that_would_emulate_it_is_warned_about(native, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert training_dtype(torch.device("cpu"), "auto") is (torch.bfloat16 if native else None)
    precision.warn_if_emulated(torch.device("cpu"), "bf16")
    precision.warn_if_emulated(torch.device("cpu"), "fp32")
    warned = [record for record in caplog.records if "emulates" in record.getMessage()]
    assert len(warned) == (0 if native else 1)
