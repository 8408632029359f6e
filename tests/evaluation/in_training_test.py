"""Few-shot probes during pretraining (config.eval) and the run's closing summary."""

import json
import logging

import numpy as np
import pytest
from absl import flags
from support import realistic_imu

from primus_jax import train
from primus_jax.config import ConfigError, base_config
from primus_jax.evaluation import in_training, settings
from primus_jax.evaluation import run as evaluation_run

CLASSES = ("still_one_axis", "still_split", "walking", "transition")


def _npz(path, n=20):
    """Four classes of realistic windows (gravity, stillness, saturation), 8 subjects."""
    x = np.concatenate([getattr(realistic_imu, c)(n=n, seed=i) for i, c in enumerate(CLASSES)])
    y = np.repeat(np.array(CLASSES), n)
    subject = np.array([f"s{i % 8}" for i in range(len(y))])
    np.savez(path, X=x, y=y, subject=subject)
    return f"npz:{path}"


def _config(data="", **eval_overrides):
    c = base_config()
    c.seed = 3
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 64
    c.queue.size = 32
    c.model.hidden = 128
    c.model.ssl_dim = c.model.mm_dim = 64
    c.train.num_steps = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.eval.data = data
    c.eval.update(eval_overrides)
    return c


def _rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_probes_every_n_steps_equal_an_evaluation_of_the_checkpoints(tmp_path, programs, caplog):
    data = _npz(tmp_path / "hapt_like.npz")
    c = _config(data, methods=("logreg",), every=2, shots=(1, 3), trials=2)
    wd = tmp_path / "run"
    caplog.set_level(logging.INFO)
    in_training.train(c, str(wd), programs=programs)

    rows = _rows(wd)
    evals = {r["step"]: r for r in rows if any(k.startswith("eval/") for k in r)}
    assert sorted(evals) == [2, 4]
    for step, row in evals.items():
        # An independent path: the few-shot entry point, reloading the step's checkpoint.
        s = settings.settings()
        s.update(
            dict(checkpoint=str(wd / "checkpoints" / str(step)), data=data, seed=c.seed, trials=2)
        )
        s.update(dict(shots=(1, 3), methods=("logreg",), zeroshot=False, retrieval=False))
        s.embedding_map = 0
        rep = evaluation_run.evaluate(s, str(tmp_path / f"eval{step}"))
        (res,) = rep["datasets"].values()
        for k in ("1", "3"):
            acc = row[f"eval/logreg_k{k}"]
            assert 0.0 <= acc <= 1.0
            assert acc == pytest.approx(res["methods"]["logreg"]["results"][k]["accuracy"]["mean"])
            f1 = res["methods"]["logreg"]["results"][k]["macro_f1"]["mean"]
            assert row[f"eval/logreg_k{k}_macro_f1"] == pytest.approx(f1)
    # The train scalars are untouched by the probe: the same run without it (what the
    # defaults give: no hook) logs the same and no eval scalars. Same config: no recompile.
    plain = tmp_path / "plain"
    train.train_and_evaluate(c, str(plain), programs=programs)
    plain_rows = _rows(plain)
    assert not any(k.startswith("eval/") for r in plain_rows for k in r)
    for a, b in zip([r for r in rows if "train/loss" in r], plain_rows, strict=True):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-6)
    assert not (plain / in_training.REPORT_DIR).exists()

    report = json.loads((wd / "fewshot" / "fewshot.json").read_text())
    assert "logreg" in next(iter(report["datasets"].values()))["methods"]
    log = caplog.text
    assert "few-shot probe of the encoder at step 4" in log and "logreg" in log
    assert f"{wd}/metrics.jsonl" in log and f"{wd}/fewshot/fewshot.json" in log
    # The printed next commands parse with the tools' own flags.
    from primus_jax.tools import embed_imu, export

    for tool in (export, embed_imu):
        (line,) = [x for x in log.splitlines() if f"{tool.__name__} --checkpoint={wd} " in x]
        fv = flags.FlagValues()
        tool.define_flags(fv)
        fv(["prog", *line.split(f"{tool.__name__} ", 1)[1].split()])
        assert fv["checkpoint"].value == str(wd)
    assert f"--config=configs/fewshot.py --config.checkpoint={wd} --config.data={data}" in log


def test_off_by_default_and_bad_settings_name_the_key(tmp_path):
    assert in_training.make_hook(base_config()) is None
    assert in_training.settings_of(_config("npz:x.npz")) is None
    s = in_training.settings_of(_config("npz:x.npz", methods=("logreg",)))
    assert s.shots == settings.DEFAULT_SHOTS and s.trials == settings.settings().trials
    for overrides, key in [
        ({"methods": ("zeroshot",)}, "eval.methods"),
        ({"methods": ("nope",)}, "eval.methods"),
        ({"methods": ("logreg",), "shots": (0,)}, "eval.shots"),
    ]:
        with pytest.raises(ConfigError) as e:
            in_training.make_hook(_config("npz:x.npz", **overrides))
        assert e.value.key == key
    with pytest.raises(ConfigError) as e:
        in_training.make_hook(_config("", methods=("logreg",)))  # synthetic source, no data
    assert e.value.key == "eval.data"
