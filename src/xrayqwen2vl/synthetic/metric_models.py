"""An offline model cache for the ReXrank metrics: RANDOM weights of the real architectures under
the real model ids, so the metrics library's own loading and scoring code runs with no hub.

The scores are meaningless (random weights); what it proves is that the code path works and what
it costs. ``tiny=True`` gives small layers (tests); ``tiny=False`` the real sizes (the benchmark).
Tokenizers are trained here on synthetic report text (byte-level BPE for RoBERTa, WordPiece for
BERT): the real vocabularies are not to be had offline.

Layout (what the libraries read; point the environment at it with ``cache_env(root)``):
- ``ROOT/hf/hub/models--<org>--<name>/snapshots/<rev>/``: Hugging Face's cache (``HF_HOME``);
- ``ROOT/xdg/chexbert/models--StanfordAIMI--RRG_scorers/…/chexbert.pth``: CheXbert's checkpoint,
  where RadEval asks ``hf_hub_download`` for it (``XDG_CACHE_HOME``).
"""

from __future__ import annotations

import random
from pathlib import Path

REVISION = "0" * 40
BERTSCORE_ID = "distilroberta-base"
BERT_ID = "bert-base-uncased"
RRG_SCORERS = "StanfordAIMI/RRG_scorers"

_WORDS = (
    "the heart size is normal mediastinal contour within limits lungs are clear no pleural effusion "
    "pneumothorax focal consolidation airspace disease cardiomegaly mild moderate small large left right "
    "bilateral lower upper lobe opacity atelectasis edema pulmonary vascular congestion degenerative changes "
    "spine thoracic osseous structures intact stable unchanged compared prior study XXXX tube catheter "
    "tip projects over silhouette enlarged nodule granuloma calcified scarring blunting costophrenic angle "
    "impression findings acute cardiopulmonary abnormality process seen there evidence of with and without"
).split()


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 25))).capitalize() + "." for _ in range(n)
    ]


def _snapshot(hub: Path, repo_id: str) -> Path:
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    snap = repo / "snapshots" / REVISION
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def _roberta_tokenizer(folder: Path, texts: list[str]):
    import json

    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=600, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split())
        for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    tok = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=512)
    tok.save_pretrained(folder)
    return tok


def _bert_tokenizer(folder: Path, texts: list[str]):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizer

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(texts, vocab_size=600, min_frequency=1)
    wp.save_model(str(folder))
    words = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True, model_max_length=512)
    tok.save_pretrained(folder)
    return tok


def _sizes(tiny: bool, layers: int) -> dict:
    if tiny:
        return {
            "hidden_size": 32,
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        }
    return {
        "hidden_size": 768,
        "num_hidden_layers": layers,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    }


def build_bertscore_model(hub: Path, texts: list[str], tiny: bool) -> None:
    """distilroberta-base: RoBERTa, 6 layers (BERTScore reads layer 5)."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    snap = _snapshot(hub, BERTSCORE_ID)
    tok = _roberta_tokenizer(snap, texts)
    vocab = 50265 if not tiny else len(tok)
    config = RobertaConfig(
        vocab_size=max(vocab, len(tok)), max_position_embeddings=514, type_vocab_size=1, **_sizes(tiny, 6)
    )
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(snap)


def build_bert_base(hub: Path, texts: list[str], tiny: bool) -> int:
    """bert-base-uncased: the config and tokenizer CheXbert's code asks for; returns the vocab size."""
    from transformers import BertConfig

    snap = _snapshot(hub, BERT_ID)
    tok = _bert_tokenizer(snap, texts)
    vocab = 30522 if not tiny else len(tok)
    BertConfig(vocab_size=max(vocab, len(tok)), **_sizes(tiny, 12 if not tiny else 2)).save_pretrained(snap)
    return max(vocab, len(tok))


def build_chexbert(xdg: Path, hub: Path) -> None:
    """chexbert.pth: {"model_state_dict": …} of bert + 13 four-way heads + 1 two-way head (keys with
    the ``module.`` prefix of a DataParallel checkpoint, as the real one has)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(hub / ("models--" + BERT_ID) / "snapshots" / REVISION)
    torch.manual_seed(1)
    bert = BertModel(config)
    state = {f"module.bert.{k}": v for k, v in bert.state_dict().items()}
    for i in range(14):
        head = torch.nn.Linear(config.hidden_size, 4 if i < 13 else 2)
        state[f"module.linear_heads.{i}.weight"] = head.weight.detach().clone()
        state[f"module.linear_heads.{i}.bias"] = head.bias.detach().clone()
    snap = _snapshot(xdg / "chexbert", RRG_SCORERS)
    torch.save({"model_state_dict": state}, snap / "chexbert.pth")


PUBMEDBERT_ID = "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext"
RADGRAPH_NER = ["", "ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA"]
RADGRAPH_RELATIONS = ["", "suggestive_of", "located_at", "modify"]


def radgraph_config() -> dict:
    """A DyGIE++ configuration as RadGraph's archive carries one (``config.json``): PubMedBERT
    embedder, spans up to 8 tokens, NER and relation heads. Reconstructed from DyGIE++'s training
    template; the real archive's own config.json is what RadEval reads when the weights are real."""
    bert = {"type": "pretrained_transformer_mismatched", "model_name": PUBMEDBERT_ID, "max_length": 512}
    return {
        "dataset_reader": {"type": "dygie", "token_indexers": {"bert": bert}, "max_span_width": 8},
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": bert}},
            "initializer": {"regexes": [["_span_width_embedding.weight", {"type": "xavier_normal"}]]},
            "module_initializer": {
                "regexes": [
                    [".*weight", {"type": "xavier_normal"}],
                    [".*weight_matrix", {"type": "xavier_normal"}],
                ]
            },
            "feature_size": 20,
            "feedforward_params": {"num_layers": 2, "hidden_dims": 150, "dropout": 0.4},
            "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "max_span_width": 8,
            "target_task": "relation",
            "modules": {
                "coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
                "ner": {},
                "relation": {"spans_per_word": 0.5, "positive_label_weight": 1.0},
                "events": {
                    "trigger_spans_per_word": 0.3,
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"trigger": 1.0, "arguments": 0.5},
                },
            },
        },
    }


def build_radgraph(xdg: Path, hub: Path, texts: list[str], tiny: bool, metrics_python: str | Path) -> None:
    """RadGraph's extracted archive where RadEval looks (``XDG_CACHE_HOME/radgraph/0.1.18/radgraph``):
    config, vocabulary, and random ``weights.th`` written by the metrics environment (the model
    classes are the metrics library's), plus PubMedBERT's config and tokenizer in the hub cache."""
    import json
    import os
    import subprocess

    import torch
    from transformers import BertConfig, BertModel

    snap = _snapshot(hub, PUBMEDBERT_ID)
    tok = _bert_tokenizer(snap, texts)
    torch.manual_seed(2)
    BertModel(
        BertConfig(vocab_size=30522 if not tiny else len(tok), **_sizes(tiny, 12 if not tiny else 2))
    ).save_pretrained(snap)
    model_dir = xdg / "radgraph" / "0.1.18" / "radgraph"
    (model_dir / "vocabulary").mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps(radgraph_config(), indent=1))
    (model_dir / "vocabulary" / "non_padded_namespaces.txt").write_text("*tags\n*labels\n")
    (model_dir / "vocabulary" / "radgraph__ner_labels.txt").write_text("\n".join(RADGRAPH_NER) + "\n")
    (model_dir / "vocabulary" / "radgraph__relation_labels.txt").write_text(
        "\n".join(RADGRAPH_RELATIONS) + "\n"
    )
    env = dict(os.environ, **cache_env(xdg.parent))
    subprocess.run(
        [
            str(metrics_python),
            "-m",
            "xrayqwen2vl.eval.rexrank_adapter",
            "--init-random-radgraph",
            str(model_dir),
        ],
        env=env,
        check=True,
        capture_output=True,
    )


RATE_NER_ID = "Angelakeke/RaTE-NER-Deberta"
BIOLORD_ID = "FremyCompany/BioLORD-2023-C"
RATE_TYPES = ["ABNORMALITY", "NON-ABNORMALITY", "DISEASE", "NON-DISEASE", "ANATOMY"]


def build_ratescore(hub: Path, texts: list[str], tiny: bool) -> None:
    """RaTEScore's two models: the entity tagger (DeBERTa-v2 token classification, B-/I- tags of
    the five RaTE entity types and O) with a unigram tokenizer, and the synonym encoder BioLORD-2023-C
    (MPNet) with a WordPiece tokenizer."""
    import torch
    from transformers import (
        DebertaV2Config,
        DebertaV2ForTokenClassification,
        DebertaV2Tokenizer,
        MPNetConfig,
        MPNetModel,
        MPNetTokenizer,
    )

    labels = ["O"] + [f"{p}-{t}" for t in RATE_TYPES for p in ("B", "I")]
    snap = _snapshot(hub, RATE_NER_ID)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted(
        {w.lower().strip(".") for t in texts for w in t.split()} | set("abcdefghijklmnopqrstuvwxyz.,")
    )
    vocab = [(t, 0.0) for t in specials] + [("▁" + w, -5.0) for w in words] + [(w, -8.0) for w in words]
    tok = DebertaV2Tokenizer(vocab=vocab, unk_id=1, model_max_length=512)
    tok.save_pretrained(snap)
    config = DebertaV2Config(
        vocab_size=len(tok) if tiny else 128100,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **_sizes(tiny, 12 if not tiny else 2),
    )
    torch.manual_seed(3)
    DebertaV2ForTokenClassification(config).save_pretrained(snap)

    snap = _snapshot(hub, BIOLORD_ID)
    folder = snap
    from tokenizers import BertWordPieceTokenizer

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        texts, vocab_size=600, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    )
    wp.save_model(str(folder))
    vocab_words = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    mtok = MPNetTokenizer(vocab={w: i for i, w in enumerate(vocab_words)}, model_max_length=512)
    mtok.save_pretrained(snap)
    torch.manual_seed(4)
    MPNetModel(
        MPNetConfig(vocab_size=len(mtok) if tiny else 30527, **_sizes(tiny, 12 if not tiny else 2))
    ).save_pretrained(snap)


def cache_env(root: str | Path) -> dict[str, str]:
    """The environment variables that make the libraries read this cache and nothing else."""
    root = Path(root).resolve()
    return {
        "HF_HOME": str(root / "hf"),
        "XDG_CACHE_HOME": str(root / "xdg"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def build_cache(
    root: str | Path, tiny: bool = True, metrics_python: str | Path | None = None
) -> dict[str, str]:
    """Write the cache under ``root``; returns ``cache_env(root)``. With ``metrics_python`` (the
    metrics environment's interpreter) RadGraph's random weights too."""
    root = Path(root)
    hub, xdg = root / "hf" / "hub", root / "xdg"
    texts = corpus()
    build_bertscore_model(hub, texts, tiny)
    build_bert_base(hub, texts, tiny)
    build_chexbert(xdg, hub)
    build_ratescore(hub, texts, tiny)
    if metrics_python is not None:
        build_radgraph(xdg, hub, texts, tiny, metrics_python)
    return cache_env(root)
