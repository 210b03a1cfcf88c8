"""`xrayqwen2vl counterfactual`: swapped-image and blank-image copies of a prepared test split."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from xrayqwen2vl.cli import main
from xrayqwen2vl.data.counterfactual import derangement, image_donors, write_counterfactuals
from xrayqwen2vl.data.records import InputFileError


@pytest.fixture
def data(prepared_dir, tmp_path):
    """A private copy of the prepared sample's dataset folder (its image paths point to the sample)."""
    out = tmp_path / "data"
    shutil.copytree(prepared_dir, out)
    for path in out.glob("demo_*.json"):  # keep the image paths valid from the new folder
        samples = json.loads(path.read_text())
        for s in samples:
            s["images"] = [str((prepared_dir / p).resolve()) for p in s["images"]]
        path.write_text(json.dumps(samples))
    return out


def test_derangement_leaves_nothing_in_place_and_is_seeded():
    for n in (2, 3, 10, 101):
        for seed in range(5):
            d = derangement(n, np.random.default_rng(seed))
            assert sorted(d) == list(range(n)) and all(d[i] != i for i in range(n))
    assert derangement(50, np.random.default_rng(1)) == derangement(50, np.random.default_rng(1))
    assert derangement(50, np.random.default_rng(1)) != derangement(50, np.random.default_rng(2))
    with pytest.raises(ValueError) as e:
        derangement(1, np.random.default_rng(0))
    assert str(e.value) == "a derangement needs at least 2 items, got 1"
    # the documented rule: a random order, each taking the next one's (one cycle)
    order = np.random.default_rng(3).permutation(7)
    expected = [0] * 7
    for j in range(7):
        expected[order[j]] = int(order[(j + 1) % 7])
    assert derangement(7, np.random.default_rng(3)) == expected


def test_each_image_position_is_permuted_among_the_studies_that_have_it():
    counts = [2, 1, 2, 2, 1, 3, 2]
    donors, mismatches = image_donors(counts, seed=4)
    assert mismatches == 1  # only one study has a third image
    for i, row in enumerate(donors):
        assert len(row) == counts[i] and i not in row
    for k in (0, 1):
        having = [i for i, c in enumerate(counts) if c > k]
        assert sorted(donors[i][k] for i in having) == having  # a permutation of that position
    assert donors[5][2] != 5


def test_swapped_and_blank_splits(data, capsys):
    assert main(["counterfactual", "--dataset-dir", str(data), "--split", "demo_test"]) == 0
    printed = capsys.readouterr().out
    assert "demo_test_swapped" in printed and "xrayqwen2vl reliance --true" in printed
    true = json.loads((data / "demo_test.json").read_text())
    swapped = json.loads((data / "demo_test_swapped.json").read_text())
    blank = json.loads((data / "demo_test_blank.json").read_text())
    info = json.loads((data / "dataset_info.json").read_text())
    for name in ("demo_test_swapped", "demo_test_blank"):
        assert info[name] == {**info["demo_test"], "file_name": f"{name}.json"}
    assert len(true) == len(swapped) == len(blank)
    for t, s, b in zip(true, swapped, blank, strict=True):
        # same study, prompt and reference; as many images as <image> tokens; none of its own
        assert s["messages"] == t["messages"] == b["messages"] and s["id"] == t["id"]
        assert (
            len(s["images"])
            == len(b["images"])
            == len(t["images"])
            == t["messages"][0]["content"].count("<image>")
        )
        assert not set(s["images"]) & set(t["images"])
    for k in (0, 1):  # the frontals (position 0) are the same images, moved; the laterals too
        assert sorted(t["images"][k] for t in true if len(t["images"]) > k) == sorted(
            s["images"][k] for s in swapped if len(s["images"]) > k
        )
    manifest = json.loads((data / "demo_test_counterfactual.json").read_text())
    ids = {t["id"]: t for t in true}
    for row, s in zip(manifest["counterfactuals"]["swapped"]["donors"], swapped, strict=True):
        assert [ids[d]["images"][k] for k, d in enumerate(row["image_from"])] == s["images"]
    for t, b in zip(true, blank, strict=True):
        for tp, bp in zip(t["images"], b["images"], strict=True):
            with Image.open(tp) as a, Image.open(data / bp) as z:
                assert a.size == z.size
                assert np.asarray(z).max() == 0


def test_image_donors_follow_the_seed():
    counts = [2, 1, 2, 2, 1, 3, 2, 1, 1, 2]
    assert image_donors(counts, seed=0) == image_donors(counts, seed=0)
    assert image_donors(counts, seed=0)[0] != image_donors(counts, seed=1)[0]
    assert image_donors([1, 1], seed=5) == ([[1], [0]], 0)  # two studies: each takes the other's
    assert image_donors([0, 2, 0, 1], seed=3)[0][0] == [] and image_donors([0, 2, 0, 1], seed=3)[0][2] == []
    with pytest.raises(ValueError) as e:
        image_donors([0, 3, 0], seed=0)
    assert str(e.value) == "only one study has images: there is no other study to take images from"
    assert image_donors(counts) == image_donors(counts, seed=0)  # the default seed is 0
    assert image_donors([]) == ([], 0)
    # positions only one study has take the other study's last image, each one counted
    assert image_donors([4, 1], seed=0) == ([[1, 1, 1, 1], [0]], 3)
    assert image_donors([2, 1], seed=3) == ([[1, 1], [0]], 1)


def _donors(manifest: dict) -> list:
    return manifest["counterfactuals"]["swapped"]["donors"]


def test_the_permutation_is_fixed_by_the_seed(data):
    """The donor mapping itself (not the manifest, which records the seed and so always differs)
    and the swapped file: the same for the same seed, different for another."""
    swapped = data / "demo_test_swapped.json"
    first = write_counterfactuals(data, "demo_test", seed=0, kinds=("swapped",))
    first_file = swapped.read_bytes()
    again = write_counterfactuals(data, "demo_test", seed=0, kinds=("swapped",))
    assert _donors(first) == _donors(again) and swapped.read_bytes() == first_file
    other = write_counterfactuals(data, "demo_test", seed=1, kinds=("swapped",))
    assert _donors(first) != _donors(other) and swapped.read_bytes() != first_file


def test_the_seed_option_reaches_the_permutation(data, capsys):
    donors = {}
    for seed in ("0", "1"):
        assert (
            main(["counterfactual", "--dataset-dir", str(data), "--split", "demo_test", "--seed", seed]) == 0
        )
        manifest = json.loads((data / "demo_test_counterfactual.json").read_text())
        assert manifest["seed"] == int(seed)
        donors[seed] = _donors(manifest)
    capsys.readouterr()
    assert donors["0"] != donors["1"]


def test_llamafactory_reads_the_counterfactual_split(data, tiny_model_dir, tmp_path):
    from test_lf_loader import _lf_dataset

    write_counterfactuals(data, "demo_test", kinds=("swapped",))
    samples = json.loads((data / "demo_test_swapped.json").read_text())
    dataset, tokenizer = _lf_dataset(tiny_model_dir, data, "demo_test_swapped", tmp_path)
    start = tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert [row["input_ids"].count(start) for row in dataset] == [len(s["images"]) for s in samples]


def test_predict_config_gives_the_exact_commands(data, capsys):
    info = json.loads((data / "dataset_info.json").read_text())
    info["openi_test"] = info["demo_test"]
    (data / "dataset_info.json").write_text(json.dumps(info))
    config = REPO / "configs" / "predict" / "qwen2vl_7b_lora_sft.yaml"
    argv = ["counterfactual", "--dataset-dir", str(data), "--split", "openi_test", "--kinds", "swapped"]
    assert main([*argv, "--predict-config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert (
        f"llamafactory-cli train {config} eval_dataset=openi_test_swapped "
        f"output_dir=saves/qwen2vl_7b/lora/predict_swapped dataset_dir={data}\n" in printed
    )
    assert "--swapped saves/qwen2vl_7b/lora/predict_swapped/generated_predictions.jsonl" in printed


def test_bad_input_names_the_file_and_record(data, tmp_path, capsys):
    assert main(["counterfactual", "--dataset-dir", str(data), "--split", "nope"]) == 2
    err = capsys.readouterr().err
    assert f"{data / 'dataset_info.json'}: no dataset 'nope'" in err and "demo_test" in err
    samples = json.loads((data / "demo_test.json").read_text())
    samples[3]["images"][0] = str(tmp_path / "missing.png")
    (data / "demo_test.json").write_text(json.dumps(samples))
    with pytest.raises(InputFileError, match=r"demo_test\.json: entry 3: cannot read image .*missing\.png"):
        write_counterfactuals(data, "demo_test", kinds=("blank",))
    (data / "demo_test.json").write_text(json.dumps(samples[:1]))
    with pytest.raises(InputFileError, match="fewer than two studies with images"):
        write_counterfactuals(data, "demo_test")
