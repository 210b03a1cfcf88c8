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


PROGRESS = "[rexrank] "  # lines with this prefix on stderr are shown to the user by rexrank_run


def say(message: str) -> None:
    print(PROGRESS + message, file=sys.stderr, flush=True)


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


def _chexbert_pass(scorer, texts, batch_size):
    """CheXbert's [CLS] vector and 14 labels of each text from ONE pass of its BERT: RadEval's
    ``get_embeddings`` and ``get_labels`` run the same encoder twice. Same tokenisation (512 tokens),
    same heads, labels as RadEval's "classification" mode (1 positive, -1 uncertain, 0 otherwise);
    texts batched by length so little is padding."""
    import torch

    model, tok = scorer.model, scorer.tokenizer
    lengths = [len(ids) for ids in tok(list(texts), truncation=True, max_length=512)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    vectors: list = [None] * len(texts)
    labels: list = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            out = model.bert(
                input_ids=enc.input_ids.to(model.device), attention_mask=enc.attention_mask.to(model.device)
            )
            cls = out.last_hidden_state[:, 0]
            heads = torch.stack(
                [head(model.dropout(cls)).argmax(dim=1) for head in model.linear_heads], dim=1
            )
        for k, i in enumerate(idx):
            vectors[i] = cls[k].cpu().numpy()
            labels[i] = [1 if c == 1 else -1 if c == 3 else 0 for c in heads[k].tolist()]
    return vectors, labels


def _chexbert(hyps, refs, batch_size, device):
    """SembScore (cosine of CheXbert's [CLS] vectors) and CheXbert labels (1 positive, -1 uncertain,
    0 negative or not mentioned), for both sides; one model for both, each distinct text once."""
    import numpy as np
    from radeval.metrics.f1chexbert import F1CheXbert

    model = F1CheXbert(device=device, batch_size=batch_size)
    order = list(model.TARGET_NAMES)
    assert order == CHEXBERT_ORDER, order
    texts, at = _unique(hyps, refs)
    vectors, rows = _chexbert_pass(model, texts, batch_size)
    vectors = np.vstack(vectors)
    h = vectors[[at[t] for t in hyps]]
    r = vectors[[at[t] for t in refs]]
    norms = np.linalg.norm(h, axis=1) * np.linalg.norm(r, axis=1)
    dots = np.einsum("nd,nd->n", h, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        semb = np.where(norms > 0, dots / norms, 0.0)
    labels = [dict(zip(order, row, strict=True)) for row in rows]
    return [float(x) for x in semb], [labels[at[t]] for t in hyps], [labels[at[t]] for t in refs]


class _PrecomputedEncoder:
    """RadGraph's DyGIE++ reads one report at a time (a batch of its sentences), so its BERT runs on
    small, unequal matrices. This stands in for the model's wordpiece encoder (AllenNLP's
    ``PretrainedTransformerEmbedder``): ``precompute`` encodes every distinct sentence beforehand in
    batches of similar length with the same encoder; a call whose sentences were all precomputed is
    answered from them, anything else (a sentence over the encoder's 512 wordpieces, type ids)
    goes to the encoder itself."""

    def __init__(self, inner, batch_size: int):
        self.inner, self.batch_size, self.cache = inner, batch_size, {}
        self.answered = self.passed_on = 0  # calls answered from the cache / sent to the encoder

    @staticmethod
    def _rows(token_ids, mask):
        return [tuple(ids[m].tolist()) for ids, m in zip(token_ids, mask, strict=True)]

    def precompute(self, rows) -> None:
        import torch

        limit = self.inner._max_length or 512
        todo = sorted({r for r in rows if 0 < len(r) <= limit and r not in self.cache}, key=len)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            width = len(chunk[-1])
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.bool)
            for k, row in enumerate(chunk):
                ids[k, : len(row)] = torch.tensor(row)
                mask[k, : len(row)] = True
            device = next(self.inner.parameters()).device
            with torch.no_grad():
                out = self.inner(ids.to(device), mask.to(device), segment_concat_mask=mask.to(device))
            for k, row in enumerate(chunk):
                self.cache[row] = out[k, : len(row)]

    def __call__(self, token_ids, mask, type_ids=None, segment_concat_mask=None):
        import torch

        plain = (type_ids is None or not bool(type_ids.any())) and (
            segment_concat_mask is None or torch.equal(segment_concat_mask, mask)
        )
        rows = self._rows(token_ids, mask) if plain else []
        if not plain or any(r not in self.cache for r in rows):
            self.passed_on += 1
            return self.inner(token_ids, mask, type_ids=type_ids, segment_concat_mask=segment_concat_mask)
        self.answered += 1
        first = self.cache[rows[0]]
        out = first.new_zeros((token_ids.size(0), token_ids.size(1), first.size(-1)))
        for k, row in enumerate(rows):
            out[k, : len(row)] = self.cache[row]
        return out


RADGRAPH_ENCODER: dict = {}  # the last parse's _PrecomputedEncoder counts (the parity test reads them)


RADGRAPH_CHUNK = 512  # reports per precomputed chunk: the cached encodings stay ~100 MB whatever the test set


def _radgraph_parse(rg, texts: list[str], batch_size: int) -> list[dict]:
    """RadEval's RadGraph parse of each text (its ``rg(texts)``), with each distinct sentence's BERT
    encoding computed beforehand in batches (``_PrecomputedEncoder``); the same model, the same
    output. Reports go ``RADGRAPH_CHUNK`` at a time, so the cache does not grow with the test set."""
    from radeval.metrics.radgraph._vendor import core

    embedder = rg.model._embedder._token_embedders["bert"]
    inner = embedder._matched_embedder
    graphs: list[dict] = []
    counts = {"answered": 0, "passed_on": 0}
    for start in range(0, len(texts), RADGRAPH_CHUNK):
        chunk = texts[start : start + RADGRAPH_CHUNK]
        inputs = core.preprocess_reports(["None" if not t else t for t in chunk], rg.model_type)
        data = core.AllennlpDataset([rg.reader.text_to_instance(line) for line in inputs])
        data.index_with(rg.model.vocab)
        rows = []
        for batch in core.PyTorchDataLoader(batch_size=1, dataset=data):
            bert = batch["text"]["bert"]
            ids, mask = bert["token_ids"], bert["wordpiece_mask"]
            rows += _PrecomputedEncoder._rows(ids.reshape(-1, ids.size(-1)), mask.reshape(-1, mask.size(-1)))
        encoder = _PrecomputedEncoder(inner, batch_size)
        encoder.precompute(rows)
        embedder.__dict__["_matched_embedder"] = encoder  # an instance attribute wins over the submodule
        try:
            parsed = rg(chunk)
        finally:
            del embedder.__dict__["_matched_embedder"]
        counts["answered"] += encoder.answered
        counts["passed_on"] += encoder.passed_on
        graphs += [parsed.get(str(k), {}) for k in range(len(chunk))]
    RADGRAPH_ENCODER.update(counts)
    return graphs


def _radgraph(hyps, refs, batch_size, device):
    """ReXrank's RadGraph: per pair, (entity F1 + relation F1) / 2 by exact match, with the original
    RadGraph model. RadEval's radgraph_radcliq parses both sides of every pair; we parse each
    distinct text once with the same model and score the pairs with the same set functions."""
    _alias_radeval()
    from radeval.metrics.radgraph_radcliq import radgraph_radcliq as rc

    scorer = rc.RadGraphRadCliQ(model_type="radgraph")
    scorer._radgraph.batch_size = batch_size
    texts, at = _unique(hyps, refs)
    graphs = _radgraph_parse(scorer._radgraph, texts, batch_size)
    scores = []
    for h, r in zip(hyps, refs, strict=True):
        gt, pred = graphs[at[r]], graphs[at[h]]
        entities = rc._compute_f1(rc._extract_entities(gt), rc._extract_entities(pred))
        relations = rc._compute_f1(rc._extract_relations(gt), rc._extract_relations(pred))
        scores.append((entities + relations) / 2)
    return scores


RATESCORE_EMPTY = 0.5  # RaTEScore's own score for a pair where one side has no entity


def _rate_entities(texts, scorer, batch_size):
    """Per text, RaTEScore's (entity, type) list, with RadEval's sentence splitting, tagger and span
    rules (``run_ner``), each text once. Texts are split one by one, so a text with no sentence (empty,
    or only fragments under 3 characters) keeps its place with no entity: RadEval's ``run_ner`` drops
    it and shifts every later text. Each distinct sentence goes to the tagger once (the tagger reads
    one sentence at a time, so where it occurs does not matter), in batches of similar length."""
    import torch
    from radeval.metrics.RaTEScore.utils import post_process, sentence_split

    tok = scorer.tokenizer
    owners, sentences = [], []
    for k, text in enumerate(texts):
        found, _ = sentence_split([text])
        owners += [k] * len(found)
        sentences += found
    distinct = list(dict.fromkeys(sentences))  # reports repeat sentences: each is tagged once
    ids = [tok(s, max_length=512, truncation=True)["input_ids"] for s in distinct]
    order = sorted(range(len(distinct)), key=lambda i: len(ids[i]))
    found: list = [None] * len(distinct)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tok(
            [distinct[i] for i in idx], max_length=512, padding=True, truncation=True, return_tensors="pt"
        ).to(scorer.device)
        with torch.no_grad():
            rows = scorer.model(**batch).logits.argmax(dim=2).tolist()
        for i, row in zip(idx, rows, strict=True):
            predicted = [scorer.idx2label[label] for label in row]
            found[i] = post_process(tok.convert_ids_to_tokens(ids[i]), predicted, tok)
    at = {s: k for k, s in enumerate(distinct)}
    entities: list[list] = [[] for _ in texts]
    for sentence, owner in zip(sentences, owners, strict=True):
        entities[owner].extend(found[at[sentence]])
    return entities


WINDOW_CALLS = {"windowed": 0, "full": 0}  # how the wrapped layers ran (the parity test reads it)


def _window_relative_attention(model) -> int:
    """Make DeBERTa-v2's disentangled attention (RaTEScore's tagger) project only the relative
    positions a batch can reach. transformers projects all 2 x 256 relative-position rows in every
    layer, for every batch, then gathers the 2L - 1 a sequence of L tokens uses; for sentences of a
    dozen tokens that is most of the tagger's time. Here the layer is given the rows from -span to
    +span around the centre as its whole table (``pos_ebd_size`` = span for the call), so every index
    it computes lands on the same row as before: the same numbers, less work. Falls back to the
    layer as it is when the batch reaches the table's ends. Returns the number of layers wrapped."""
    import types

    wrapped = 0
    for module in model.modules():
        original = getattr(type(module), "disentangled_attention_bias", None)
        if original is None or not hasattr(module, "pos_ebd_size"):
            continue

        def windowed(
            self, query_layer, key_layer, relative_pos, rel_embeddings, scale_factor, _orig=original
        ):
            full = self.pos_ebd_size
            span = full
            if relative_pos is not None and query_layer.size(-2) == key_layer.size(-2):
                span = int(relative_pos.abs().max()) + 1
            if span >= full:
                WINDOW_CALLS["full"] += 1
                return _orig(self, query_layer, key_layer, relative_pos, rel_embeddings, scale_factor)
            WINDOW_CALLS["windowed"] += 1
            self.pos_ebd_size = span
            try:
                window = rel_embeddings[full - span : full + span]
                return _orig(self, query_layer, key_layer, relative_pos, window, scale_factor)
            finally:
                self.pos_ebd_size = full

        module.disentangled_attention_bias = types.MethodType(windowed, module)
        wrapped += 1
    return wrapped


def _rate_embeddings(strings, scorer, batch_size):
    """BioLORD's [CLS] vector of each distinct entity string (RadEval's ``process_embedding``
    encodes a pair's entities afresh for every pair); batches of similar length."""
    import torch

    unique = sorted(set(strings), key=lambda s: (len(s), s))
    vectors = {}
    step = max(batch_size, 64)
    for start in range(0, len(unique), step):
        chunk = unique[start : start + step]
        encoded = scorer.eval_tokenizer(
            chunk, truncation=True, padding=True, return_tensors="pt", max_length=30
        ).to(scorer.device)
        with torch.no_grad():
            cls = scorer.eval_model(**encoded).last_hidden_state[:, 0, :].to("cpu")
        vectors.update(zip(chunk, cls, strict=True))
    return vectors


def _ratescore(hyps, refs, batch_size, device):
    """RaTEScore with RadEval's models, span rules, affinity matrix and scoring function
    (``utils.compute``), organised for speed: each distinct text tagged once, each distinct entity
    encoded once, then every pair scored from those. The same numbers as ``RaTEScore.compute_score``
    (``tests/test_rexrank_metrics.py`` compares them on the same weights), which tags each side of
    each pair and encodes each pair's entities separately. A pair with no entity on a side gets
    RaTEScore's 0.5."""
    import torch
    from radeval.metrics.RaTEScore.scorer import RaTEScore
    from radeval.metrics.RaTEScore.utils import compute

    scorer = RaTEScore(batch_size=batch_size, use_gpu=device.startswith("cuda"))
    _window_relative_attention(scorer.model)
    texts, at = _unique(hyps, refs)
    entities = _rate_entities(texts, scorer, batch_size)
    vectors = _rate_embeddings([e for found in entities for e, _ in found], scorer, batch_size)
    matrix = scorer.affinity_matrix
    scores = []
    for h, r in zip(hyps, refs, strict=True):
        pred, gt = entities[at[h]], entities[at[r]]
        if not pred or not gt:
            scores.append(RATESCORE_EMPTY)
            continue
        gt_vec = torch.stack([vectors[e] for e, _ in gt])
        pred_vec = torch.stack([vectors[e] for e, _ in pred])
        gt_types, pred_types = [t for _, t in gt], [t for _, t in pred]
        precision = compute(gt_vec, pred_vec, gt_types, pred_types, matrix)
        recall = compute(pred_vec, gt_vec, pred_types, gt_types, matrix)
        total = precision + recall
        scores.append(0.0 if total == 0 else float(2 * precision * recall / total))
    return scores


def _green_judge():
    """RadEval's GREEN object without a model: its prompt parser and score formula."""
    from radeval.metrics.green_score.green import GREEN

    return GREEN(model_name=None, cpu=True)


def green_parsed(response: str) -> bool:
    """Whether a judge's answer has GREEN's sections; GREEN itself scores an answer without them 0."""
    return "[Matched Findings]" in response and "[Clinically Significant Errors]" in response


def _green_result(responses: list[str]) -> dict:
    from radeval.metrics.green_score.utils import clean_responses

    judge = _green_judge()
    cleaned = [clean_responses(r) for r in responses]
    return {
        "scores": [float(judge.compute_green(r) or 0.0) for r in cleaned],
        "counts": [judge.compute_error_count(r) for r in cleaned],  # (a)-(f) significant, then matched
        "unparsed": [k for k, r in enumerate(cleaned) if not green_parsed(r)],
        "categories": [*judge.sub_categories, "Matched Findings"],
    }


def _green_local(hyps, refs, batch_size, device):
    import tempfile

    from radeval.metrics.green_score.green import GREEN

    with tempfile.TemporaryDirectory(prefix="green-") as tmp:  # GREEN writes its own files there
        scorer = GREEN(GREEN_MODEL, output_dir=tmp, cpu=not device.startswith("cuda"))
        scorer(list(refs), list(hyps))
    return _green_result(list(scorer.completions))


GREEN_MAX_TOKENS = 1400  # GREEN generates up to 2,048 tokens in all, prompt included (~600 tokens)


def _green_endpoint(hyps, refs, endpoint: dict):
    """GREEN through an OpenAI-compatible chat endpoint the user serves (vLLM, ``llamafactory-cli api``,
    …): RadEval's prompt, greedy decoding, RadEval's parser and formula. Each distinct (reference,
    candidate) pair is asked once, ``concurrency`` requests at a time. The key, if any, comes from
    $XRAYQWEN2VL_GREEN_API_KEY (never the command line)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from radeval.metrics.green_score.utils import make_prompt

    url = endpoint["url"].rstrip("/") + "/chat/completions"
    where = httpx.URL(url).copy_with(username=None, password=None)
    key = os.environ.get("XRAYQWEN2VL_GREEN_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    pairs = list(dict.fromkeys(zip(refs, hyps, strict=True)))
    timeout = float(endpoint.get("timeout", 600))

    def ask(client, pair):
        body = {
            "model": endpoint["model"],
            "messages": [{"role": "user", "content": make_prompt(*pair)}],
            "temperature": 0,
            "max_tokens": int(endpoint.get("max_tokens", GREEN_MAX_TOKENS)),
        }
        for attempt in range(3):
            try:
                r = client.post(url, json=body, headers=headers, timeout=timeout)
            except httpx.TransportError as e:
                if attempt == 2:
                    raise RuntimeError(f"GREEN endpoint {where}: {type(e).__name__}: {e}") from None
                time.sleep(2**attempt)
                continue
            if r.status_code >= 500 and attempt < 2:
                time.sleep(2**attempt)
                continue
            if r.status_code != 200:
                text = " ".join(r.text.split())[:200]
                raise RuntimeError(f"GREEN endpoint {where} answered HTTP {r.status_code}: {text}")
            try:
                return r.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise RuntimeError(f"GREEN endpoint {where}: not a chat completion: {r.text[:200]}") from None
        raise AssertionError("unreachable")

    with httpx.Client() as client, ThreadPoolExecutor(int(endpoint.get("concurrency", 4))) as pool:
        answers = dict(zip(pairs, pool.map(lambda p: ask(client, p), pairs), strict=True))
    result = _green_result([answers[(r, h)] for h, r in zip(hyps, refs, strict=True)])
    result["endpoint"] = {"url": str(where), "model": endpoint["model"], "requests": len(pairs)}
    return result


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
    steps = [m for m in ("bertscore", "sembscore", "radgraph", "ratescore", "green") if m in metrics]

    def start(name: str) -> float:
        say(f"{name} ({steps.index(name) + 1}/{len(steps)}): {len(hyps)} pairs on {device}")
        return time.perf_counter()

    def done(key: str, t: float) -> None:
        out["seconds"][key] = round(time.perf_counter() - t, 2)
        say(f"{key}: {out['seconds'][key]:.1f} s")

    if "bertscore" in metrics:
        t = start("bertscore")
        out["per_sample"]["bertscore"] = _bertscore(hyps, refs, batch_size, device)
        done("bertscore", t)
    if "sembscore" in metrics or "chexbert" in metrics:
        t = start("sembscore")
        semb, hyp_labels, ref_labels = _chexbert(hyps, refs, batch_size, device)
        out["per_sample"]["sembscore"] = semb
        out["chexbert_labels"] = {"prediction": hyp_labels, "reference": ref_labels}
        done("sembscore+chexbert", t)
    for name, fn in (("radgraph", _radgraph), ("ratescore", _ratescore)):
        if name in metrics:
            t = start(name)
            out["per_sample"][name] = fn(hyps, refs, batch_size, device)
            done(name, t)
    if "green" in metrics:
        t = start("green")
        endpoint = request.get("green_endpoint")
        green = (
            _green_endpoint(hyps, refs, endpoint)
            if endpoint
            else _green_local(hyps, refs, batch_size, device)
        )
        out["per_sample"]["green"] = green.pop("scores")
        out["green"] = green
        done("green", t)
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
        "green": (
            f"{request['green_endpoint']['model']} at {out['green']['endpoint']['url']}"
            if request.get("green_endpoint") and "green" in out
            else GREEN_MODEL
        ),
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
