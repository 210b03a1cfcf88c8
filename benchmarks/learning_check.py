"""The learning check: does a tiny Qwen2-VL trained from scratch read findings off the images?

On the synthetic sample (whose drawings show their findings, synthetic/images.py), the tiny random
Qwen2-VL (synthetic/tiny_model.py) is trained with the real ``llamafactory-cli train`` on
configs/tiny/qwen2vl_tiny_learn_sft.yaml and predicts with the real ``llamafactory-cli`` the test
split, greedily, then the test split with its images swapped among the studies (``xrayqwen2vl
counterfactual``), greedily, then the test split again with sampling. Judged on the headline
clinical figure, CE micro-5 F1 (doc/evaluation.md):

  (a) greedy, it beats the constant report (the most common training report, for every study)
      and the paired bootstrap 95% interval of the advantage excludes 0;
  (b) greedy, it loses that advantage with swapped images: the drop (true minus swapped images)
      has a 95% interval that excludes 0;
  (c) sampling, it writes distinct reports for at least half of the test studies;
  (d) llamafactory-cli's greedy predict and LLaMA-Factory's ChatModel (behind ``xrayqwen2vl
      report``, the web demo and the API) begin, for the first test studies, with exactly what
      greedy decoding on the inputs the training collator builds writes: inference shows the model
      its images as training did (the 3-D image positions; doc/evaluation.md says why);
  (e) greedy, its true-image evaluation carries no mode-collapse warning (evaluate's rule: repeated
      reports must not leave out the findings their studies' references state; doc/evaluation.md).

Why both decodings: greedy decoding writes one report per set of findings, and the synthetic
reports vary only in wording that no image shows, so even a perfect greedy model writes fewer
distinct reports than studies; sampling varies the wording, but a model sampling the prior names
findings at random and so beats the constant report by chance. Greedy judges the image, sampling
the variety.

It prints every figure with its interval and the conditions, writes OUT/learning_check.json, and
exits 1 when a condition fails. ``--break-training`` trains on the training split with its images
swapped among the studies (the pixels no longer match the reports): the model can then learn only
the prior, and condition (a) must fail; tests/test_learning_check.py runs both.

    python benchmarks/learning_check.py --out saves/learning_check
    python benchmarks/learning_check.py --out saves/lc-broken --break-training

Every llamafactory-cli run gets OMP_NUM_THREADS (default 1): on a shared two-core machine torch's
default of one thread per core contended with other jobs and made each step several times slower.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import positions

from xrayqwen2vl import lf_shim
from xrayqwen2vl.lf_shim import launch_env

REPO = Path(__file__).resolve().parents[1]
LEARN_CONFIG = REPO / "configs" / "tiny" / "qwen2vl_tiny_learn_sft.yaml"
PREDICT_CONFIG = REPO / "configs" / "tiny" / "qwen2vl_tiny_predict.yaml"
NAME = "lc"
HEADLINE = "CE-micro-5-F1"


@dataclass
class Recipe:
    """Everything the check depends on; the defaults are the benchmark's."""

    reports: int = 1000
    sample_seed: int = 3
    image_size: int = 256  # pixels of the synthetic drawings (square)
    image_max_pixels: int = 112 * 112  # each view resized to this: 16 visual tokens at 112x112
    target: str = "both"  # prepare --target
    epochs: float = 8.0
    learning_rate: float = 2e-3
    batch: int = 8
    model_seed: int = 0
    hidden_size: int = 64
    vision_depth: int = 2
    vision_embed_dim: int = 64
    max_new_tokens: int = 96
    temperature: float = 1.0  # of the sampled run
    probe_studies: int = 4  # condition (d): how many test studies
    probe_tokens: int = 24  # and how many tokens of each
    threads: int = 1
    break_training: bool = False
    swapped: bool = True  # predict the swapped split (conditions b)
    sampled: bool = True  # predict with sampling (condition c)
    blank: bool = False  # also predict blank images (reported, not judged)


@dataclass
class Bar:
    """What the check demands."""

    distinct_share: float = 0.5
    level: float = 0.95


def log(msg: str) -> None:
    print(f"[learning_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _env(threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(WANDB_DISABLED="true", CUDA_VISIBLE_DEVICES="")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return launch_env(env)  # the wrappers' inference shim (xrayqwen2vl/lf_shim.py)


def llamafactory(
    config: Path, overrides: dict, log_path: Path, threads: int, env: dict | None = None
) -> float:
    """One real ``llamafactory-cli train CONFIG key=value …``; returns its wall-clock seconds."""
    cli = Path(sys.executable).parent / "llamafactory-cli"
    args = [str(cli if cli.exists() else "llamafactory-cli"), "train", str(config)]
    args += [f"{k}={v}" for k, v in overrides.items()]
    t0 = time.perf_counter()
    env = {**_env(threads), **(env or {})}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    log_path.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {proc.returncode}; log {log_path}:\n{proc.stderr[-3000:]}"
        )
    return time.perf_counter() - t0


def make_data(recipe: Recipe, work: Path) -> Path:
    """Synthetic sample -> prepare (the public command) -> counterfactual copies."""
    from xrayqwen2vl.cli import main
    from xrayqwen2vl.data.counterfactual import BLANK, SWAPPED, write_counterfactuals
    from xrayqwen2vl.synthetic.sample import generate_sample

    raw, data = work / "raw", work / "data"
    size = (recipe.image_size, recipe.image_size)
    generate_sample(raw, reports=recipe.reports, seed=recipe.sample_seed, image_size=size, progress=False)
    args = ["prepare", "--format", "openi", "--reports-dir", str(raw / "ecgen-radiology")]
    args += ["--images-dir", str(raw / "NLMCXR_png"), "--out", str(data), "--name", NAME]
    if main([*args, "--target", recipe.target, "--quiet"]) != 0:
        raise RuntimeError("prepare failed")
    kinds = tuple(k for k, on in ((SWAPPED, recipe.swapped), (BLANK, recipe.blank)) if on)
    if kinds:
        write_counterfactuals(data, f"{NAME}_test", seed=0, kinds=kinds)
    if recipe.break_training:
        write_counterfactuals(data, f"{NAME}_train", seed=0, kinds=(SWAPPED,))
    return data


def make_model(recipe: Recipe, work: Path) -> Path:
    from xrayqwen2vl.synthetic.tiny_model import TinySize, build_tiny_model

    size = TinySize(
        hidden_size=recipe.hidden_size,
        intermediate_size=2 * recipe.hidden_size,
        vision_depth=recipe.vision_depth,
        vision_embed_dim=recipe.vision_embed_dim,
    )
    return build_tiny_model(work / "tiny", seed=recipe.model_seed, size=size)


def train(recipe: Recipe, data: Path, base: Path, work: Path) -> tuple[Path, float]:
    out = work / "model"
    overrides = {
        "model_name_or_path": base,
        "dataset_dir": data,
        "dataset": f"{NAME}_train_swapped" if recipe.break_training else f"{NAME}_train",
        "output_dir": out,
        "image_max_pixels": recipe.image_max_pixels,
        "num_train_epochs": recipe.epochs,
        "learning_rate": recipe.learning_rate,
        "per_device_train_batch_size": recipe.batch,
        "seed": recipe.model_seed,
    }
    return out, llamafactory(LEARN_CONFIG, overrides, work / "train.log", recipe.threads)


def predict(
    recipe: Recipe, data: Path, model: Path, dataset: str, run: str, work: Path, sample: bool = False
):
    """llamafactory-cli predict of ``dataset`` into work/predict_<run>/; returns (file, seconds)."""
    out = work / f"predict_{run}"
    overrides = {
        "model_name_or_path": model,
        "dataset_dir": data,
        "eval_dataset": dataset,
        "output_dir": out,
        "image_max_pixels": recipe.image_max_pixels,
        "max_new_tokens": recipe.max_new_tokens,
        "do_sample": str(sample).lower(),
        "temperature": recipe.temperature,
    }
    env = None
    if run == "greedy" and recipe.probe_studies:  # condition (d): record the image positions
        env = positions.probe_env(work / "positions_predict", base=_env(recipe.threads))
    seconds = llamafactory(PREDICT_CONFIG, overrides, work / f"predict_{run}.log", recipe.threads, env)
    return out / "generated_predictions.jsonl", seconds


def training_style_greedy(model_dir: Path, data_dir: Path, dataset: str, recipe: Recipe, work: Path):
    """Greedy decoding of the first ``probe_tokens`` tokens of the first ``probe_studies`` studies
    of ``dataset``, without a cache: each step is one forward pass on the batch LLaMA-Factory's
    training collator builds from the sequence so far (its input ids, pixels and the 3-D image
    positions it computes)."""
    # LLaMA-Factory's logger reads its level when first imported: quiet here, and the variable put
    # back at once, so processes started later (the tests' llamafactory-cli runs) log as usual.
    saved = os.environ.get("LLAMAFACTORY_VERBOSITY")
    os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")
    try:
        import torch
        import transformers
        from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
        from llamafactory.data.collator import SFTDataCollatorWith4DAttentionMask
        from llamafactory.hparams import get_train_args
        from llamafactory.model import load_tokenizer
        from transformers import AutoModelForImageTextToText
    finally:
        if saved is None:
            os.environ.pop("LLAMAFACTORY_VERBOSITY", None)
        else:
            os.environ["LLAMAFACTORY_VERBOSITY"] = saved

    model_args, data_args, training_args, _, _ = get_train_args(
        {
            "model_name_or_path": str(model_dir),
            "stage": "sft",
            "do_predict": True,
            "predict_with_generate": True,
            "finetuning_type": "full",
            "dataset_dir": str(data_dir),
            "eval_dataset": dataset,
            "template": "qwen2_vl",
            "cutoff_len": 1024,
            "image_max_pixels": recipe.image_max_pixels,
            "output_dir": str(work / "probe"),
            "overwrite_cache": True,
            "preprocessing_num_workers": 1,
            "report_to": "none",
        }
    )
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    tokens = load_tokenizer(model_args)
    tokenizer = tokens["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    rows = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokens)["eval_dataset"]
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    collator = SFTDataCollatorWith4DAttentionMask(
        template=template, model=model, label_pad_token_id=-100, **tokens
    )
    stop = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    texts = []
    for row in (rows[i] for i in range(min(recipe.probe_studies, len(rows)))):
        generated: list[int] = []
        while len(generated) < recipe.probe_tokens:
            ids = row["input_ids"] + generated
            feature = {**row, "input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(ids)}
            batch = collator([feature])
            batch.pop("labels")
            with torch.no_grad():
                token = int(model(**batch).logits[0, -1].argmax())
            generated.append(token)
            if token in stop:
                break
        texts.append(tokenizer.decode(generated, skip_special_tokens=True).strip())
    return texts


def chat_greedy(model: Path, data: Path, recipe: Recipe) -> list[str]:
    """The first ``probe_tokens`` tokens of the first ``probe_studies`` test reports written by
    LLaMA-Factory's ChatModel (what ``xrayqwen2vl report``, the web demo and the API use), greedily."""
    lf_shim.install()  # as serve/report.py does
    from llamafactory.chat import ChatModel

    chat = ChatModel(
        {
            "model_name_or_path": str(model),
            "template": "qwen2_vl",
            "image_max_pixels": recipe.image_max_pixels,
            "infer_backend": "huggingface",
            "do_sample": False,
            "max_new_tokens": recipe.probe_tokens,
        }
    )
    samples = json.loads((data / f"{NAME}_test.json").read_text(encoding="utf-8"))[: recipe.probe_studies]
    return [
        chat.chat(
            [{"role": "user", "content": s["messages"][0]["content"]}],
            images=[str(data / p) for p in s["images"]],
        )[0].response_text.strip()
        for s in samples
    ]


def probe(recipe: Recipe, model: Path, data: Path, greedy: Path, work: Path) -> dict:
    """Condition (d): do llamafactory-cli's greedy predictions and ChatModel's replies begin with what
    greedy decoding on the training collator's inputs writes?"""
    expected = training_style_greedy(model, data, f"{NAME}_test", recipe, work)
    predicted = [p.strip() for p in _predictions(greedy)[: len(expected)]]
    positions.record_here(work / "positions_chat")
    chatted = chat_greedy(model, data, recipe)
    same = [p.startswith(e) and c == e for p, c, e in zip(predicted, chatted, expected, strict=True)]
    differ = [
        {"predict": p, "chat": c, "training_inputs": e}
        for p, c, e, ok in zip(predicted, chatted, expected, same, strict=True)
        if not ok
    ]
    return {
        "studies": len(expected),
        "tokens": recipe.probe_tokens,
        "same": sum(same),
        "first_difference": differ[0] if differ else None,
        # the image positions of the first generated token against the training collator's
        "positions": {
            "predict": positions.compare(work / "positions_predict", model),
            "chat": positions.compare(work / "positions_chat", model),
        },
    }


def constant_run(data: Path, work: Path, resamples: int) -> Path:
    """The constant report (most common training report) for every test study, evaluated."""
    from xrayqwen2vl.eval.baselines import most_common_report, write_predictions
    from xrayqwen2vl.eval.evaluate import evaluate
    from xrayqwen2vl.eval.inputs import read_dataset

    test = read_dataset(data / f"{NAME}_test.json")
    report, _ = most_common_report(read_dataset(data / f"{NAME}_train.json"))
    path = work / "constant" / "generated_predictions.jsonl"
    write_predictions(path, test, [report] * len(test))
    evaluate(path, work / "constant", resamples=resamples, html=False)
    return work / "constant"


def _predictions(path: Path) -> list[str]:
    return [
        json.loads(line)["predict"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def judge(work: Path, data: Path, preds: dict[str, Path], resamples: int, bar: Bar) -> dict:
    """Figures and conditions (a)-(c) from the prediction files."""
    from xrayqwen2vl.eval.bootstrap import paired_comparison
    from xrayqwen2vl.eval.diversity import text_diversity
    from xrayqwen2vl.eval.evaluate import evaluate, load_run
    from xrayqwen2vl.eval.normalize import normalize
    from xrayqwen2vl.eval.reliance import image_reliance

    cf = {k: preds[k] for k in ("swapped", "blank") if k in preds}
    true_dir = work / "reliance" / "true"
    if cf:
        reliance = image_reliance(preds["greedy"], cf, work / "reliance", resamples=resamples, html=False)
    else:
        reliance = None
        evaluate(preds["greedy"], true_dir, resamples=resamples, html=False)
    model_table, _ = load_run(true_dir)
    const_table, _ = load_run(constant_run(data, work, resamples))
    advantage = paired_comparison(model_table, const_table, resamples, seed=0, level=bar.level)[HEADLINE]
    metrics = json.loads((true_dir / "metrics.json").read_text())
    greedy = metrics["diversity"]["predictions"]
    result = {
        "n": metrics["n"],
        "headline": HEADLINE,
        "model": advantage["A"],
        "constant": advantage["B"],
        "advantage": {k: advantage[k] for k in ("difference", "low", "high")},
        "greedy_distinct": greedy["distinct"],
        "clinical_F1": {g: metrics["clinical"][g]["F1"] for g in ("micro-5", "micro-14", "macro-14")},
        "per_observation_F1": {
            o: round(v["F1"], 3)
            for o, v in metrics["clinical"]["per_observation"].items()
            if v["F1"] is not None
        },
    }
    result["collapse"] = metrics["diversity"]["collapse"]
    result["repetition"] = {
        k: metrics["diversity"]["repetition"][k]
        for k in ("hidden", "studies_with_findings", "hidden_share", "blindness")
    }
    conditions = {
        "a_beats_constant": advantage["low"] > 0,
        "e_no_collapse": not result["collapse"]["collapsed"],
    }
    if reliance is not None:
        for kind, entry in reliance["counterfactuals"].items():
            m = entry["metrics"][HEADLINE]
            result[kind] = {
                "model": m["counterfactual"],
                "drop": {"difference": m["difference"], "low": m["low"], "high": m["high"]},
                "unchanged_share": entry["unchanged"]["share"],
                "verdict": entry["verdict"],
            }
        result["reliance_warnings"] = reliance["warnings"]
        if "swapped" in result:
            conditions["b_loses_it_with_swapped_images"] = result["swapped"]["drop"]["low"] > 0
    if "sampled" in preds:
        d = text_diversity([normalize(p) for p in _predictions(preds["sampled"])])
        result["sampled"] = {k: d[k] for k in ("distinct", "distinct_share", "most_frequent_share")}
        conditions["c_distinct_reports"] = d["distinct_share"] >= bar.distinct_share
    result["conditions"] = conditions
    return result


def run_check(recipe: Recipe, work: Path, resamples: int = 1000, bar: Bar | None = None) -> dict:
    """The whole check in ``work`` (emptied first); returns the figures, conditions and timings."""
    bar = bar or Bar()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    timings = {}
    data = make_data(recipe, work)
    base = make_model(recipe, work)
    timings["data_and_model_s"] = time.perf_counter() - t0
    log(f"data and tiny model ready ({timings['data_and_model_s']:.0f} s); training")
    model, timings["train_s"] = train(recipe, data, base, work)
    log(f"trained in {timings['train_s']:.0f} s; predicting")
    test = f"{NAME}_test"
    runs = {"greedy": (test, False)}
    runs.update({kind: (f"{test}_{kind}", False) for kind in ("swapped", "blank") if getattr(recipe, kind)})
    if recipe.sampled:
        runs["sampled"] = (test, True)
    preds = {}
    for run, (dataset, sample) in runs.items():
        preds[run], timings[f"predict_{run}_s"] = predict(recipe, data, model, dataset, run, work, sample)
    t1 = time.perf_counter()
    result = judge(work, data, preds, resamples, bar)
    timings["evaluate_s"] = time.perf_counter() - t1
    if recipe.probe_studies:
        t1 = time.perf_counter()
        p = result["probe"] = probe(recipe, model, data, preds["greedy"], work)
        same_positions = all(r["rows"] and r["same"] == r["rows"] for r in p["positions"].values())
        result["conditions"]["d_inference_matches_training_inputs"] = (
            p["same"] == p["studies"] and same_positions
        )
        timings["probe_s"] = time.perf_counter() - t1
    result["passed"] = all(result["conditions"].values())
    timings["total_s"] = time.perf_counter() - t0
    result["train_loss"] = json.loads((model / "all_results.json").read_text()).get("train_loss")
    result["recipe"] = dataclasses.asdict(recipe)
    result["bar"] = dataclasses.asdict(bar)
    result["timings"] = {k: round(v, 1) for k, v in timings.items()}
    return result


def summary(result: dict) -> list[str]:
    a = result["advantage"]
    lines = [
        f"{result['n']} test studies; train_loss {result['train_loss']:.3f}; timings {json.dumps(result['timings'])}",
        f"(a) greedy CE micro-5 F1: model {result['model']:.3f}, constant report {result['constant']:.3f}, "
        f"advantage {a['difference']:+.3f} [{a['low']:+.3f}, {a['high']:+.3f}]; clinical F1 "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["clinical_F1"].items()),
    ]
    for kind in ("swapped", "blank"):
        if kind in result:
            s, d = result[kind], result[kind]["drop"]
            lines.append(
                f"{'(b)' if kind == 'swapped' else '   '} {kind} images: CE micro-5 F1 {s['model']:.3f}, drop "
                f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]; {s['unchanged_share']:.1%} of greedy "
                f"predictions unchanged; verdict: {s['verdict']}"
            )
    if "sampled" in result:
        s = result["sampled"]
        lines.append(
            f"(c) sampled: distinct reports {s['distinct']}/{result['n']} ({s['distinct_share']:.1%}); most frequent "
            f"{s['most_frequent_share']:.1%} (greedy: {result['greedy_distinct']} distinct)"
        )
    r = result["repetition"]
    lines.append(
        f"(e) greedy: repeated reports leave out stated findings of {r['hidden']} of {r['studies_with_findings']} "
        f"studies with findings ({r['hidden_share']:.1%}), {r['blindness']:.2f} of the rate of chance; mode collapse: "
        f"{'yes' if result['collapse']['collapsed'] else 'no'}"
    )
    if "probe" in result:
        p = result["probe"]
        lines.append(
            f"(d) predict and chat begin as greedy decoding on the training inputs does ({p['tokens']} tokens) "
            f"for {p['same']}/{p['studies']} studies"
        )
        if p["first_difference"]:
            lines.append(f"    first difference: {json.dumps(p['first_difference'])}")
        for path, r in p["positions"].items():
            lines.append(
                f"    {path}: image positions of the first generated token equal the training collator's "
                f"for {r['same']}/{r['rows']} samples"
                + (f"; first difference {json.dumps(r['first_difference'])}" if r["first_difference"] else "")
            )
    for name, ok in result["conditions"].items():
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {name}")
    lines.append("learning check " + ("PASSED" if result["passed"] else "FAILED"))
    return lines


def main(argv: list[str] | None = None) -> int:
    defaults = Recipe()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="saves/learning_check", help="work folder (emptied first)")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    for f in dataclasses.fields(Recipe):
        value = getattr(defaults, f.name)
        flag = f"--{f.name.replace('_', '-')}"
        kind = argparse.BooleanOptionalAction if isinstance(value, bool) else None
        if kind:
            p.add_argument(flag, action=kind, default=None, help=f"default {value}")
        else:
            p.add_argument(flag, type=type(value), default=None, help=f"default {value}")
    args = p.parse_args(argv)
    changes = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe) if getattr(args, f.name) is not None
    }
    recipe = dataclasses.replace(defaults, **changes)
    work = Path(args.out).resolve()
    result = run_check(recipe, work, args.bootstrap)
    (work / "learning_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(summary(result)))
    print(f"wrote {work / 'learning_check.json'}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
