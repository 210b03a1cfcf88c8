"""BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) with the COCO caption toolkit (``pycocoevalcap``).

The corpus figures are the toolkit's own (``Bleu(4)`` with its "closest" reference length,
``Meteor`` — the METEOR 1.5 jar, run with Java —, ``Rouge``, ``Cider``) on texts normalised by
:mod:`.normalize`; no PTB tokenizer is run, as in R2Gen. Alongside them we keep per-sample
statistics from which the same corpus figures can be recomputed on a resample (bootstrap):
the BLEU n-gram counts the toolkit's BleuScorer cooks (additive over samples), and the
per-sample METEOR, ROUGE-L and CIDEr-D scores (the corpus ROUGE-L and CIDEr-D are their means;
the corpus METEOR is the jar's aggregate, so a resample uses the mean of segment scores).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from dataclasses import dataclass

import numpy as np

NLG_KEYS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
_SMALL, _TINY = 1e-9, 1e-15  # the toolkit's constants in BleuScorer.compute_score


@dataclass
class NLGResult:
    corpus: dict[str, float]  # the toolkit's corpus figures, keys NLG_KEYS
    bleu_correct: np.ndarray  # [N, 4] clipped n-gram matches
    bleu_guess: np.ndarray  # [N, 4] hypothesis n-grams
    bleu_testlen: np.ndarray  # [N]
    bleu_reflen: np.ndarray  # [N] (closest reference length)
    sentence_bleu4: np.ndarray  # [N] the toolkit's per-sample BLEU-4
    meteor: np.ndarray  # [N]
    rouge_l: np.ndarray  # [N]
    cider: np.ndarray  # [N]


def java_available() -> bool:
    return shutil.which("java") is not None


@contextlib.contextmanager
def _utf8_java():
    """Make the METEOR JVM read and write UTF-8 (Chinese tokens) whatever the locale."""
    old = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = ((old + " ") if old else "") + "-Dfile.encoding=UTF-8"
    try:
        yield
    finally:
        if old is None:
            del os.environ["JAVA_TOOL_OPTIONS"]
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = old


class MeteorProcess:
    """The toolkit's METEOR scorer (a JVM running meteor-1.5.jar).

    Starting it loads METEOR's paraphrase tables, which takes seconds; create it first and do
    other work while it loads (``evaluate`` does). Use as a context manager or call ``close``.
    """

    def __init__(self):
        if not java_available():
            raise RuntimeError(
                "METEOR needs Java (the COCO toolkit runs meteor-1.5.jar): install a JRE, e.g. "
                "apt-get install default-jre-headless"
            )
        from pycocoevalcap.meteor.meteor import Meteor

        class _Meteor(Meteor):
            def __del__(self):  # the toolkit's kills the process a second time; close() does it
                pass

        with _utf8_java():
            self._scorer = _Meteor()

    def compute_score(self, gts: dict, res: dict) -> tuple[float, list[float]]:
        return self._scorer.compute_score(gts, res)

    def close(self) -> None:
        proc = self._scorer.meteor_p
        with self._scorer.lock:
            if proc.poll() is None:
                proc.stdin.close()
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def compute_nlg(
    predictions: list[str], references: list[str], meteor: MeteorProcess | None = None
) -> NLGResult:
    """Score normalised predictions against normalised references (one reference each).

    ``meteor``: an already started :class:`MeteorProcess` (left open), else one is started here.
    """
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("nothing to evaluate: no predictions")
    res = {i: [p] for i, p in enumerate(predictions)}
    gts = {i: [r] for i, r in enumerate(references)}

    bleu = BleuScorer(n=4)
    for i in res:
        bleu += (res[i][0], gts[i])
    with contextlib.redirect_stdout(io.StringIO()):  # the toolkit prints its totals
        bleu_corpus, bleu_per = bleu.compute_score(option="closest", verbose=0)
    correct = np.array([c["correct"] for c in bleu.ctest], dtype=np.float64)
    guess = np.array([c["guess"] for c in bleu.ctest], dtype=np.float64)
    testlen = np.array([c["testlen"] for c in bleu.ctest], dtype=np.float64)
    reflen = np.array(
        [min((abs(r - c["testlen"]), r) for r in c["reflen"])[1] for c in bleu.ctest], dtype=np.float64
    )

    if meteor is None:
        with MeteorProcess() as own:
            meteor_corpus, meteor_per = own.compute_score(gts, res)
    else:
        meteor_corpus, meteor_per = meteor.compute_score(gts, res)
    rouge, rouge_per = Rouge().compute_score(gts, res)
    cider, cider_per = Cider().compute_score(gts, res)
    corpus = {f"BLEU-{k + 1}": float(bleu_corpus[k]) for k in range(4)}
    corpus.update({"METEOR": float(meteor_corpus), "ROUGE-L": float(rouge), "CIDEr": float(cider)})
    return NLGResult(
        corpus=corpus,
        bleu_correct=correct,
        bleu_guess=guess,
        bleu_testlen=testlen,
        bleu_reflen=reflen,
        sentence_bleu4=np.array(bleu_per[3], dtype=np.float64),
        meteor=np.array(meteor_per, dtype=np.float64),
        rouge_l=np.array(rouge_per, dtype=np.float64),
        cider=np.array(cider_per, dtype=np.float64),
    )


def bleu_from_counts(correct: np.ndarray, guess: np.ndarray, testlen, reflen) -> np.ndarray:
    """Corpus BLEU-1..4 from summed counts, exactly as BleuScorer.compute_score does.

    ``correct`` and ``guess`` are [..., 4] sums, ``testlen``/``reflen`` [...] sums; returns [..., 4].
    Vectorised so a bootstrap computes all resamples at once.
    """
    correct = np.asarray(correct, dtype=np.float64)
    guess = np.asarray(guess, dtype=np.float64)
    ratios = (correct + _TINY) / (guess + _SMALL)
    cumulative = np.cumprod(ratios, axis=-1)
    bleus = cumulative ** (1.0 / np.arange(1, 5))
    ratio = (np.asarray(testlen, dtype=np.float64) + _TINY) / (np.asarray(reflen, dtype=np.float64) + _SMALL)
    with np.errstate(divide="ignore", over="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return bleus * penalty[..., None]
