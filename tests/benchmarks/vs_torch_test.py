"""The paired comparison measures both commands' peak RSS the same way (kernel accounting of
each child) and forms median pair ratios."""

import sys

import pytest

from primus_jax.benchmarks import measure, vs_torch


def _cmd(mb, rate):
    code = (
        f"import json; x = bytearray({mb} * 2**20); x[::4096] = b'1' * len(x[::4096]); "
        f"print(json.dumps({{'samples_per_s': {rate}}}))"
    )
    return [sys.executable, "-c", code]


def test_compare_pairs_and_rss():
    r = vs_torch.compare(_cmd(300, 200.0), _cmd(100, 100.0), pairs=2)
    assert r["samples_per_s"]["ratio_median"] == 2.0
    a, b = r["peak_rss_mb"]["a"], r["peak_rss_mb"]["b"]
    assert 300 <= a < 360 and 100 <= b < 160 and a - b > 180


def test_machine_fields():
    f = measure.machine_fields()
    assert f["cpu_model"] and f["peak_rss_mb"] > 0 and isinstance(f["xla_flags"], list)
    assert f["cpu_id"] == measure.cpu_id()


def test_cpu_id_tells_zen3_from_zen4():
    block = "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {m}\n"
    block += "model name\t: AMD EPYC\n\n"
    zen3 = block.format(n=0, m=1) + block.format(n=1, m=1)
    zen4 = block.format(n=0, m=17) + block.format(n=1, m=17)
    assert measure.cpu_id(zen3) == "AuthenticAMD family 25 model 1"
    assert measure.cpu_id(zen4) == "AuthenticAMD family 25 model 17"
    assert measure.cpu_id("model name\t: some arm core\n") == ""


def test_a_failed_or_silent_child_names_its_command():
    crash = [sys.executable, "-c", "import sys; sys.stderr.write('boom in child'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"(?s)exit 3.*boom in child"):
        measure.run_record(crash)
    silent = [sys.executable, "-c", "print('no json here')"]
    with pytest.raises(RuntimeError, match=r"\(exit 0, ") as e:
        vs_torch.compare(silent, _cmd(10, 1.0), pairs=1)
    assert "print('no json here')" in str(e.value)
    hung = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(RuntimeError, match=r"exit -9, .*killed at the 2 s bound"):
        measure.run_record(hung, timeout=2)
