"""Zero-shot prompts travel with the built dataset: metadata first, then the builder's table
(old builds), generic sentences (with a warning) only for data with neither."""

import collections
import logging
import os
import shutil

import numpy as np
import pytest

from primus_jax.evaluation import labelled
from tfds_builders import testing_utils
from tfds_builders.ego4d import ego4d_dataset_builder, ego4d_meta
from tfds_builders.egoexo4d import egoexo4d_dataset_builder, egoexo_meta
from tfds_builders.realworld import realworld_dataset_builder as rw
from tfds_builders.uci_hapt import uci_hapt_dataset_builder as hapt

HAPT_DUMMY = os.path.join(os.path.dirname(hapt.__file__), "dummy_data")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    for config in ("raw", "transitions"):
        testing_utils.build(hapt.Builder, root, HAPT_DUMMY, config=config)
    return str(root)


def test_transitions_prompts_come_from_the_built_metadata(data_dir):
    data = labelled.load_tfds(
        "uci_hapt/transitions",
        data_dir=data_dir,
        train_split="train",
        test_split="test",
        prepare=False,
    )
    assert data.class_names == list(hapt.TRANSITION_NAMES)
    assert data.prompts == [list(p) for p in hapt.TRANSITION_PROMPTS]
    assert data.prompt_source == "metadata" and data.text_from_labels is False
    assert data.text_encoder == "minilm"  # the prompts are embedded with all-MiniLM-L6-v2
    assert data.train.text == ["", ""]  # no pretraining text


def test_activity_prompts_are_the_templates(data_dir):
    data = labelled.load_tfds(
        "uci_hapt/raw", data_dir=data_dir, train_split="train", test_split="test", prepare=False
    )
    assert data.prompts == [list(hapt.TEMPLATES[c]) for c in range(6)]
    assert data.prompt_source == "metadata" and data.text_from_labels is True


@pytest.mark.parametrize(
    "name,module,table,names",
    [
        ("egoexo4d/raw", egoexo4d_dataset_builder, egoexo_meta.CLASS_PROMPTS, None),
        ("ego4d/clip4clip", ego4d_dataset_builder, ego4d_meta.CLASS_PROMPTS, None),
        ("realworld", rw, rw.CLASS_PROMPTS, None),
        ("uci_hapt/transitions", hapt, hapt.TRANSITION_PROMPTS, hapt.TRANSITION_NAMES),
        ("uci_hapt/minilm", hapt, hapt.CLASS_PROMPTS, None),
    ],
)
def test_old_builds_fall_back_to_the_builder_table(name, module, table, names):
    label_names = list(names or module.Builder.LABEL_NAMES)
    old_metadata = {"label_names": label_names}  # built before class_prompts existed
    prompts, from_labels, source = labelled.class_prompts(name, old_metadata, module)
    assert source == "builder"
    assert prompts == [list(p) for p in table] and len(prompts) == len(label_names)
    assert from_labels is (module is hapt and "transitions" not in name)


def test_builder_tables_have_5_to_10_sentences_per_class():
    for table in (egoexo_meta.CLASS_PROMPTS, rw.CLASS_PROMPTS, hapt.TRANSITION_PROMPTS):
        assert all(5 <= len(p) <= 9 for p in table)
    assert all(9 <= len(p) <= 10 for p in ego4d_meta.CLASS_PROMPTS)  # the reference's, verbatim
    assert [p[0] for p in egoexo_meta.CLASS_PROMPTS][:2] == ["COVID-19 test", "repairing a bicycle"]


def test_generic_prompts_only_without_metadata_or_table(caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    prompts, from_labels, source = labelled.class_prompts(
        "foreign_ds", {"label_names": ["sit", "walk_fast"]}, None
    )
    assert source == "generic" and not from_labels
    assert prompts == labelled.default_prompts(["sit", "walk_fast"])
    assert prompts[1][0] == "a person is walk fast"
    assert any("generic sentences" in r.getMessage() for r in caplog.records)
    # A builder table whose classes do not match the build is not used either.
    _, _, source = labelled.class_prompts("uci_hapt/raw", {"label_names": ["a", "b"]}, hapt)
    assert source == "generic"


def test_metadata_prompts_must_match_the_classes():
    with pytest.raises(ValueError, match=r"uci_hapt/raw: info\.metadata has 1 class_prompts"):
        labelled.class_prompts(
            "uci_hapt/raw", {"label_names": ["a", "b"], "class_prompts": [["x"]]}, hapt
        )


def _valid_npz(path):
    from support import realistic_imu

    x = realistic_imu.stacked(2)[0]  # (12, 250, 6): still, walking, saturated, transitions
    n = len(x)
    np.savez(
        path,
        X=x,
        y=np.arange(n) % 3,
        class_names=np.array(["sit", "walk", "stairs"]),
        subject=np.array([f"s{i % 4}" for i in range(n)]),
        ids=np.array([f"w{i}" for i in range(n)]),
        text=np.array([f"window {i}" for i in range(n)]),
    )
    return str(path)


def test_fuzzed_npz_is_read_or_refused_naming_the_file(tmp_path):
    """Damaged archives and members (dtype, shape, NaN, missing): a named error, or windows
    that follow the contract; never an unnamed crash."""
    from support import fuzz

    base = _valid_npz(tmp_path / "base.npz")
    mutations = [*fuzz.BINARY_MUTATIONS, *fuzz.NPZ_MEMBER_MUTATIONS]
    outcomes = collections.Counter()
    for i, (_, mutation, seed) in enumerate(fuzz.cases([base], mutations, 60, seed=1)):
        path = str(tmp_path / f"case{i}.npz")
        shutil.copy(base, path)
        if mutation in fuzz.NPZ_MEMBER_MUTATIONS:
            fuzz.corrupt_npz(path, mutation, seed)
        else:
            fuzz.corrupt_file(path, mutation, seed)
        kind, data = fuzz.check_outcome(lambda p=path: labelled.load_npz(p), path)
        outcomes[kind, mutation] += 1
        if kind == "ok":
            for split in (data.train, data.test):
                assert split.imu.shape[1:] == (250, 6) and np.isfinite(split.imu).all()
                assert len(split.y) == len(split.imu) == len(split.ids) == len(split.subject)
                assert split.text is None or len(split.text) == len(split.y)
    assert sum(n for (k, _), n in outcomes.items() if k == "error") >= 30, outcomes
