"""The one module that imports the metrics library (RadEval), run in the metrics environment.

``evaluate --metrics rexrank`` (``rexrank_run.py``) writes the texts to a JSON file and runs
``.venv-metrics/bin/python -m xrayqwen2vl.eval.rexrank_adapter IN.json OUT.json``: RadEval cannot
share ``.venv`` with LLaMA-Factory on Python 3.11 (doc/evaluation.md, "ReXrank metrics"), so it
lives in a second environment layered over the first, and this module is its only entry point.
Each model is loaded once and fed batches; the scores come back per report.

RadEval 2.2.1 as published imports its vendored RadGraph code as ``RadEval.…`` while the package
installs as ``radeval`` (jbdel/RadEval issue 27), so on a case-sensitive file system its
RadGraph-family metrics fail to import. ``_alias_radeval`` maps the ``RadEval`` name onto the
installed package, module for module (one copy of each module, not two); delete it when RadEval
releases the fix.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import sys
import time
from pathlib import Path

BERTSCORE_MODEL = "distilroberta-base"
BERTSCORE_LAYER = 5
CHEXBERT_MODEL = "StanfordAIMI/RRG_scorers chexbert.pth (bert-base-uncased architecture)"
RADGRAPH_MODEL = "StanfordAIMI/RRG_scorers radgraph.tar.gz (model_type 'radgraph', not radgraph-xl)"
RATESCORE_MODELS = "Angelakeke/RaTE-NER-Deberta + FremyCompany/BioLORD-2023-C (affinity matrix 'long')"
GREEN_MODEL = "StanfordAIMI/GREEN-radllama2-7b"
# CheXbert's 14 outputs in RadEval's order (13 conditions, then No Finding).
CHEXBERT_ORDER = [
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
]


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``RadEval.x.y`` is the module ``radeval.x.y`` (the same object)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "RadEval" or fullname.startswith("RadEval."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module("radeval" + spec.name[len("RadEval") :])
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module):
        pass  # already executed under its real name


def _alias_radeval() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _bertscore(hyps, refs, batch_size, device):
    from radeval.metrics.bertscore._vendor import BERTScorer

    from .rexrank import bertscore_text

    scorer = BERTScorer(
        model_type=BERTSCORE_MODEL,
        num_layers=BERTSCORE_LAYER,
        rescale_with_baseline=True,
        idf=False,
        lang="en",
        batch_size=batch_size,
        device=device,
    )
    _, _, f1 = scorer.score(
        [bertscore_text(h) for h in hyps], [bertscore_text(r) for r in refs], batch_size=batch_size
    )
    return [float(x) for x in f1.tolist()]


def _unique(hyps, refs):
    """Each distinct text once (evaluate sends every reference twice, and the constant report once
    per study): the per-text models run on these, the pairs are scored from the results."""
    texts = list(dict.fromkeys([*hyps, *refs]))
    return texts, {t: k for k, t in enumerate(texts)}


def _chexbert(hyps, refs, batch_size, device):
    """SembScore (cosine of CheXbert's [CLS] vectors) and CheXbert labels (1 positive, -1 uncertain,
    0 negative or not mentioned), for both sides; one model for both, each distinct text once."""
    import numpy as np
    from radeval.metrics.f1chexbert import F1CheXbert

    model = F1CheXbert(device=device, batch_size=batch_size)
    texts, at = _unique(hyps, refs)
    vectors = np.vstack(model.get_embeddings(texts))
    h = vectors[[at[t] for t in hyps]]
    r = vectors[[at[t] for t in refs]]
    norms = np.linalg.norm(h, axis=1) * np.linalg.norm(r, axis=1)
    dots = np.einsum("nd,nd->n", h, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        semb = np.where(norms > 0, dots / norms, 0.0)
    order = list(model.TARGET_NAMES)
    assert order == CHEXBERT_ORDER, order
    labels = [dict(zip(order, row, strict=True)) for row in model.get_labels(texts, mode="classification")]
    return [float(x) for x in semb], [labels[at[t]] for t in hyps], [labels[at[t]] for t in refs]


def _radgraph(hyps, refs, batch_size, device):
    """ReXrank's RadGraph: per pair, (entity F1 + relation F1) / 2 by exact match, with the original
    RadGraph model. RadEval's radgraph_radcliq parses both sides of every pair; we parse each
    distinct text once with the same model and score the pairs with the same set functions."""
    _alias_radeval()
    from radeval.metrics.radgraph_radcliq import radgraph_radcliq as rc

    scorer = rc.RadGraphRadCliQ(model_type="radgraph")
    scorer._radgraph.batch_size = batch_size
    texts, at = _unique(hyps, refs)
    parsed = scorer._radgraph(texts)
    graphs = [parsed.get(str(k), {}) for k in range(len(texts))]
    scores = []
    for h, r in zip(hyps, refs, strict=True):
        gt, pred = graphs[at[r]], graphs[at[h]]
        entities = rc._compute_f1(rc._extract_entities(gt), rc._extract_entities(pred))
        relations = rc._compute_f1(rc._extract_relations(gt), rc._extract_relations(pred))
        scores.append((entities + relations) / 2)
    return scores


RATESCORE_EMPTY = 0.5  # RaTEScore's own score for a pair where one side has no entity


def _ratescore(hyps, refs, batch_size, device):
    """RadEval's RaTEScore drops an empty text while splitting sentences, which shifts every later
    pair; so pairs with an empty side are not sent and get RaTEScore's no-entity score, 0.5."""
    from radeval.metrics.RaTEScore.scorer import RaTEScore

    keep = [k for k, (h, r) in enumerate(zip(hyps, refs, strict=True)) if h.strip() and r.strip()]
    scores = [RATESCORE_EMPTY] * len(hyps)
    if keep:
        scorer = RaTEScore(batch_size=batch_size, use_gpu=device.startswith("cuda"))
        kept, _, _ = scorer.compute_score([hyps[k] for k in keep], [refs[k] for k in keep])
        if len(kept) != len(keep):
            raise RuntimeError(f"RaTEScore returned {len(kept)} scores for {len(keep)} pairs")
        for k, value in zip(keep, kept, strict=True):
            scores[k] = float(value)
    return scores


def _green(hyps, refs, batch_size, device):
    import tempfile

    from radeval.metrics.green_score.green import GREEN

    with tempfile.TemporaryDirectory(prefix="green-") as tmp:  # GREEN writes its own files there
        scorer = GREEN(GREEN_MODEL, output_dir=tmp, cpu=not device.startswith("cuda"))
        _, _, scores, _ = scorer(list(refs), list(hyps))
    return [float(x) for x in scores]


def init_random_radgraph(model_dir: str | Path, seed: int = 0) -> None:
    """Write ``weights.th`` for a RadGraph model folder that has ``config.json`` and ``vocabulary/``:
    the DyGIE model RadEval builds from that config, with random weights (the offline test cache,
    ``synthetic/metric_models.py``). Built with RadEval's own classes so the shapes are RadEval's."""
    import torch

    _alias_radeval()
    from dotmap import DotMap
    from radeval.metrics.radgraph._vendor.allennlp.data import Vocabulary
    from radeval.metrics.radgraph._vendor.allennlp.modules import text_field_embedders, token_embedders
    from radeval.metrics.radgraph._vendor.dygie.models import dygie

    model_dir = Path(model_dir)
    config = DotMap(json.loads((model_dir / "config.json").read_text(encoding="utf-8")))
    vocab = Vocabulary.from_files(str(model_dir / "vocabulary"), None, None)
    bert = config.model.embedder.token_embedders.bert
    embedder = text_field_embedders.BasicTextFieldEmbedder(
        {
            "bert": token_embedders.PretrainedTransformerMismatchedEmbedder(
                model_name=bert.model_name, max_length=bert.max_length
            )
        }
    )
    model_dict = config.model.toDict()
    for name in ("type", "embedder", "initializer", "module_initializer"):
        model_dict.pop(name, None)
    torch.manual_seed(seed)
    model = dygie.DyGIE(vocab=vocab, embedder=embedder, **model_dict)
    torch.save(model.state_dict(), model_dir / "weights.th")


def run(request: dict) -> dict:
    import torch

    hyps, refs = request["hyps"], request["refs"]
    batch_size = int(request.get("batch_size", 32))
    device = request.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    metrics = request["metrics"]
    out: dict = {"per_sample": {}, "seconds": {}, "device": device}
    t0 = time.perf_counter()
    if "bertscore" in metrics:
        out["per_sample"]["bertscore"] = _bertscore(hyps, refs, batch_size, device)
        out["seconds"]["bertscore"] = round(time.perf_counter() - t0, 2)
    if "sembscore" in metrics or "chexbert" in metrics:
        t = time.perf_counter()
        semb, hyp_labels, ref_labels = _chexbert(hyps, refs, batch_size, device)
        out["per_sample"]["sembscore"] = semb
        out["chexbert_labels"] = {"prediction": hyp_labels, "reference": ref_labels}
        out["seconds"]["sembscore+chexbert"] = round(time.perf_counter() - t, 2)
    for name, fn in (("radgraph", _radgraph), ("ratescore", _ratescore), ("green", _green)):
        if name in metrics:
            t = time.perf_counter()
            out["per_sample"][name] = fn(hyps, refs, batch_size, device)
            out["seconds"][name] = round(time.perf_counter() - t, 2)
    for name, values in out["per_sample"].items():
        if len(values) != len(hyps):  # a library that drops a text would misalign every later study
            raise RuntimeError(f"{name}: {len(values)} scores for {len(hyps)} reports")
    out["versions"] = {
        name: _version(name) for name in ("radeval", "torch", "transformers", "medspacy", "spacy", "numpy")
    }
    out["models"] = {
        "bertscore": f"{BERTSCORE_MODEL}, layer {BERTSCORE_LAYER}, baseline rescaling on, IDF off",
        "sembscore": CHEXBERT_MODEL,
        "chexbert": CHEXBERT_MODEL,
        "radgraph": RADGRAPH_MODEL,
        "ratescore": RATESCORE_MODELS,
        "green": GREEN_MODEL,
    }
    return out


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--init-random-radgraph":
        init_random_radgraph(args[1])
        return 0
    if len(args) != 2:
        print("usage: python -m xrayqwen2vl.eval.rexrank_adapter REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    result = run(request)
    Path(args[1]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
