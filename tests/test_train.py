"""train(cfg) end to end on the tiny model: export, resume, warm start, a sweep, 2-process CPU DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from hific_lit.cli import main as hific
from hific_lit.config import CONFIG_DIR
from hific_lit.data.sample import load_sample_photo
from hific_lit.errors import CheckpointError, DatasetError, SettingError, WeightsUnavailableError
from hific_lit.io.checkpoint import load_inference_checkpoint
from hific_lit.training.base import ITERATION_KEY
from hific_lit.training.losses import LossConfig, psnr
from hific_lit.training.run import compose_config, default_wandb_mode, run, train

ROOT = CONFIG_DIR.parent
SMOKE = ["debug=fdr", "data.samples_per_epoch=8", "data.val_tiles=1"]


def run_script(
    args: list[str], multirun: bool = False, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"} | (env or {})
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *(["-m"] if multirun else []), *SMOKE, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("base")
    return out, train(compose_config([*SMOKE, "logger=csv"], out))


def test_a_run_writes_checkpoints_metrics_images_and_logs(base_run: tuple[Path, dict]) -> None:
    out, metrics = base_run
    assert metrics["iteration"] == 2
    for key in ("train/loss", "val/rd_loss", "val/psnr", "val/bpp_rounded", "val/lpips"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "checkpoints" / "best.ckpt").is_file()
    assert json.loads((out / "metrics.json").read_text())["status"] == "ok"
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == ["iter_0000001.png", "iter_0000002.png"]
    header = (out / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "train/d_real" not in header and "val/rd_loss" in header and "train/aux_loss" in header


def test_the_exported_checkpoint_compresses_a_real_photo(base_run: tuple[Path, dict]) -> None:
    out, _ = base_run
    model = load_inference_checkpoint(out / "inference.ckpt")
    raw = torch.load(out / "inference.ckpt", weights_only=True)
    assert not any("discriminator" in k for k in raw["state_dict"]) and "discriminator_state_dict" not in raw
    photo = load_sample_photo()[..., :96, :160]
    data = model.compress(photo)
    x_hat = model.decompress(data)
    assert x_hat.shape == photo.shape
    with torch.no_grad():
        forward = model(photo).x_hat.clamp(0, 1)
    assert abs(psnr(photo, x_hat).item() - psnr(photo, forward).item()) < 0.5
    assert len(data) > 0


def test_best_checkpoint_exports_from_the_command_line(base_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = base_run
    assert hific(["export", str(out / "checkpoints" / "best.ckpt"), str(tmp_path / "best.inference.ckpt")]) == 0
    model = load_inference_checkpoint(tmp_path / "best.inference.ckpt")
    assert model.decompress(model.compress(torch.rand(3, 40, 30))).shape == (1, 3, 40, 30)
    assert hific(["export", str(tmp_path / "missing.ckpt"), str(tmp_path / "x.ckpt")]) == 2
    assert not (tmp_path / "x.ckpt").exists()


def test_resume_continues_the_iteration_counter(base_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = base_run
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)[ITERATION_KEY] == 2
    metrics = train(compose_config([*SMOKE, "max_iterations=3", f"ckpt_path={last}"], tmp_path))
    assert metrics["iteration"] == 3
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed[ITERATION_KEY] == 3 and resumed["global_step"] == 6
    with pytest.raises(CheckpointError, match=r"resume it with arch\.hyper_analysis_kernel=rdft"):
        train(
            compose_config(
                [*SMOKE, "max_iterations=3", f"ckpt_path={last}", "arch.hyper_analysis_kernel=plain"], tmp_path
            )
        )


def test_gan_stage_warm_starts_from_the_base_run(base_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = base_run
    last = out / "checkpoints" / "last.ckpt"
    metrics = train(compose_config([*SMOKE, "stage=gan", f"warmstart={last}", "logger=csv"], tmp_path))
    assert metrics["iteration"] == 2
    for key in ("train/d_real", "train/d_fake", "val/d_real", "val/d_fake"):
        assert 0 < metrics[key] < 1, key
    gan = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert gan[ITERATION_KEY] == 2 and gan["global_step"] == 6
    assert any(k.startswith("discriminator.") for k in gan["state_dict"])
    assert not any(k.startswith("model.discriminator") for k in gan["state_dict"])
    assert load_inference_checkpoint(tmp_path / "inference.ckpt").compress(torch.rand(3, 32, 48))


def returned_to_hydra(path: Path) -> dict[int, object]:
    """What each job of a sweep returned to Hydra, by job number (``job_return_probe.JobReturnProbe``)."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {record["job"]: record["returned"] for record in records}


PROBE_ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)}


def probe_returns(path: Path) -> list[str]:
    """Overrides that add :class:`job_return_probe.JobReturnProbe` writing to ``path``."""
    return ["+hydra.callbacks.probe._target_=job_return_probe.JobReturnProbe", f"+hydra.callbacks.probe.path={path}"]


def test_a_failing_sweep_job_does_not_stop_the_sweep_and_each_job_returns_its_metric(tmp_path: Path) -> None:
    sweep, returns = tmp_path / "sweep", tmp_path / "returns.jsonl"
    args = ["regime.target_bpp=-1,0.3", f"hydra.sweep.dir={sweep}", *probe_returns(returns)]
    result = run_script(args, multirun=True, env=PROBE_ENV)
    assert result.returncode == 1, result.stderr[-3000:]  # some jobs failed
    failed = json.loads((sweep / "0" / "metrics.json").read_text())
    assert failed["status"] == "failed" and "target_bpp" in failed["error"]
    ok = json.loads((sweep / "1" / "metrics.json").read_text())
    assert ok["status"] == "ok"
    returned = returned_to_hydra(returns)
    assert math.isnan(returned[0]) and returned[1] == ok["val/rd_loss"]  # optimized_metric, as the sweeper sees it


def test_an_optuna_sweep_records_every_trials_values(tmp_path: Path) -> None:
    pytest.importorskip(
        "hydra_plugins.hydra_optuna_sweeper", reason="Hydra's Optuna sweeper is not installed: pip install '.[sweeps]'"
    )
    optuna = pytest.importorskip("optuna")
    sweep, study = tmp_path / "sweep", f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["hparams_search=optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}"]
    args += [f"hydra.sweeper.storage={study}", "regime.target_bpp=0.01"]  # above the target: lambda_A decides
    result = run_script(args, multirun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="lambda_a", storage=study).trials
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    jobs = {}
    for job in sorted(sweep.glob("[0-9]*")):
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        lambda_a = float(overrides.split("regime.lambda_a=")[1].split()[0])
        metrics = json.loads((job / "metrics.json").read_text())
        jobs[lambda_a] = [metrics["val/bpp_rounded"], metrics["val/psnr"]]
    assert {t.params["regime.lambda_a"]: t.values for t in trials} == jobs  # each trial's values are its job's
    assert len({tuple(values) for values in jobs.values()}) == 2, "lambda_A reached the training"
    front = OmegaConf.load(sweep / "optimization_results.yaml")
    assert all(list(s["values"]) in jobs.values() for s in front.solutions)


def test_a_failing_run_raises_alone_and_is_recorded_in_a_sweep(tmp_path: Path) -> None:
    cfg = compose_config([*SMOKE, "regime.target_bpp=-1"], tmp_path)
    with pytest.raises(SettingError, match=r"^stage: target_bpp must be > 0"):  # one line, no traceback (issue #26)
        run(cfg, in_sweep=False)
    run(cfg, in_sweep=True)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_missing_lpips_weights_stop_training_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError, match=r"alexnet-owt-7be5be79\.pth"):
        train(compose_config([*SMOKE, "perceptual.pretrained_backbone=true"], tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("stage", ["base", pytest.param("gan", marks=pytest.mark.slow)])
def test_two_process_cpu_ddp_shares_one_output_folder_and_one_rate_weight(stage: str, tmp_path: Path) -> None:
    run_dir, probe = tmp_path / "run", tmp_path / "probe"
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", f"stage={stage}", "data.batch_size=4"]
    probe_callback = ["+callbacks.rank_probe._target_=rank_probe.RankProbe", f"+callbacks.rank_probe.dirpath={probe}"]
    result = run_script([*ddp, *probe_callback, "logger=csv", f"hydra.run.dir={run_dir}"], timeout=600, env=PROBE_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size=2" in result.stderr or "distributed_backend=gloo" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe", "run"]
    assert [p.name for p in (run_dir / "csv").iterdir()] == ["version_0"]  # rank zero logs alone
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["iteration"] == 2
    assert (run_dir / "inference.ckpt").is_file()

    ranks = [[json.loads(line) for line in (probe / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [r["iteration"] for r in ranks[0]] == [r["iteration"] for r in ranks[1]] == [1, 2]
    sub_batches = 2 if stage == "gan" else 1
    loss = LossConfig(target_bpp=0.30, lambda_a=1.0, lambda_b=2**-6, warmup_iterations=50_000)  # regime=med
    for step0, step1 in zip(*ranks, strict=True):
        assert step0["batch"] == step1["batch"] == 4 // 2 * sub_batches  # global batch 4 over 2 ranks
        assert step0["rate_weight"] == step1["rate_weight"]  # the same λ' on both ranks
        mean = (step0["bpp_rounded"] + step1["bpp_rounded"]) / 2  # from the ranks' own batches
        assert step0["decision_bpp"] == step1["decision_bpp"] == pytest.approx(mean, rel=1e-6)
        assert step0["rate_weight"] == loss.rate_weight(mean, step0["iteration"] - 1)
    assert any(s0["bpp_rounded"] != s1["bpp_rounded"] for s0, s1 in zip(*ranks, strict=True))  # different crops


def test_a_global_batch_that_does_not_divide_over_the_ranks_is_refused(tmp_path: Path) -> None:
    cfg = compose_config([*SMOKE, "trainer.devices=2", "data.batch_size=3"], tmp_path)
    with pytest.raises(ValueError, match=r"data.batch_size=3 is the global batch.*multiple of 2"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_the_paper_model_without_shards_stops_before_building_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIFIC_SHARDS", str(tmp_path / "no-shards"))
    monkeypatch.setattr("hific_lit.training.run.build_module", lambda cfg: pytest.fail("the model was built"))
    with pytest.raises(DatasetError, match=r"no training shards at .*no-shards.*make shards SRC=.* OUT=.*no-shards"):
        train(compose_config(["regime=med", "trainer.devices=4"], tmp_path / "run"))


def test_the_readme_command_without_shards_says_how_to_make_them(tmp_path: Path) -> None:
    env = os.environ | {"HIFIC_SHARDS": str(tmp_path / "none"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "regime=med", "trainer.devices=4"]
    cmd.append(f"hydra.run.dir={tmp_path / 'run'}")
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2  # nothing could run
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("scripts/train.py: error: no training shards at") and "make shards" in last
    assert "Traceback" not in result.stderr


def test_wandb_is_offline_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"NETRC": str(tmp_path / "n")}
    monkeypatch.setattr(os, "environ", environ)
    default_wandb_mode()
    assert os.environ["WANDB_MODE"] == "offline"
    environ["WANDB_MODE"] = "online"
    default_wandb_mode()
    assert os.environ["WANDB_MODE"] == "online"  # an explicit choice wins


@pytest.mark.slow
def test_wandb_logger_records_an_offline_run(tmp_path: Path) -> None:
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *SMOKE, "logger=wandb", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(
        cmd, cwd=ROOT, env=env_free | {"NETRC": str(tmp_path / "netrc")}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
