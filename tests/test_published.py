"""Internal consistency of ``attnkit.published``, the book's table of published results.

The figures themselves come from the papers; these tests check what code can check: every
citation key exists in ``book/references.bib``, values lie in their metric's range, rows
are unique, ROUGE comes in complete triples, the training costs agree with the paper's own
GPU-time formula, and the constructor rejects malformed rows.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import pytest

from attnkit import published as pub
from attnkit.training import count_parameters

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), re.M))


def test_every_citation_key_is_in_references_bib():
    keys = _bib_keys()
    assert "vaswani2017attention" in keys  # the parser itself works
    missing = pub.citation_keys() - keys
    assert not missing, f"keys not in book/references.bib: {sorted(missing)}"


def test_references_bib_parses_as_bibtex():
    """The bibliography the book builds from parses (a lost brace breaks every citation),
    and every entry the regular expression above finds is an entry of the parse."""
    from pybtex.database import parse_file

    entries = parse_file(str(BIB)).entries
    assert set(entries) == _bib_keys(), set(entries) ^ _bib_keys()


def test_no_duplicate_rows():
    counts = Counter(r.key for r in pub.RESULTS)
    dupes = [k for k, n in counts.items() if n > 1]
    assert not dupes, f"duplicate rows: {dupes}"


def test_values_lie_in_their_metric_range_and_fields_are_valid():
    assert len(pub.RESULTS) >= 40
    for r in pub.RESULTS:
        assert 0.0 <= r.value <= 100.0
        assert r.family in pub.FAMILIES and r.metric in pub.METRICS and r.split in pub.SPLITS
    # an accuracy-like metric cannot exceed the human F1 by absurd margins: sanity on scales
    squad_f1 = [r.value for r in pub.results(dataset="SQuAD 1.1", metric="F1")]
    assert all(40 < v < 100 for v in squad_f1)
    bleu = [r.value for r in pub.results(metric="BLEU")]
    assert all(20 < v < 50 for v in bleu)
    errors = [r.value for r in pub.results(dataset="IMDB", metric="error")]
    assert all(0 < v < 10 for v in errors)


def test_rouge_rows_come_in_ordered_triples():
    by_model: dict[tuple[str, str], dict[str, float]] = {}
    for r in pub.results(task="summarization"):
        by_model.setdefault((r.model, r.citation), {})[r.metric] = r.value
    assert len(by_model) >= 5
    for (model, _), scores in by_model.items():
        assert set(scores) == {"ROUGE-1", "ROUGE-2", "ROUGE-L"}, model
        # ROUGE-2 (bigrams) <= ROUGE-L (LCS) <= ROUGE-1 (unigrams) for these systems
        assert scores["ROUGE-2"] < scores["ROUGE-L"] < scores["ROUGE-1"], model


def test_translation_rows_have_costs_consistent_with_gpu_time():
    rows = pub.results(task="translation")
    assert {r.dataset for r in rows} == {"WMT14 En-De", "WMT14 En-Fr"}
    base = [r for r in rows if r.model == "Transformer (base)"]
    big = [r for r in rows if r.model == "Transformer (big)"]
    assert len(base) == len(big) == 2
    # section 5.2: base 12 hours, big 3.5 days, on 8 P100 GPUs at 9.5 TFLOPS (section 6.1)
    want_base = pub.training_flops_from_gpu_time(12, 8, pub.P100_TFLOPS)
    want_big = pub.training_flops_from_gpu_time(3.5 * 24, 8, pub.P100_TFLOPS)
    for r in base:
        assert r.training_flops == pytest.approx(want_base, rel=0.02)
    for r in big:
        assert r.training_flops == pytest.approx(want_big, rel=0.02)
    # Table 2: the Transformer is the cheapest competitive system in each column
    for pair in ("WMT14 En-De", "WMT14 En-Fr"):
        costs = {
            r.model + (" ens" if r.ensemble else ""): r.training_flops
            for r in rows
            if r.dataset == pair and r.training_flops is not None
        }
        assert min(costs, key=costs.get) == "Transformer (base)"


def test_table_and_filters():
    rows = pub.results(dataset="IMDB")
    t = pub.table(rows, columns=("model", "value"))
    assert t[0] == ("model", "value")
    assert len(t) == len(rows) + 1
    assert t[1] == (rows[0].model, rows[0].value)
    assert pub.results(dataset="IMDB", split="dev") == []
    with pytest.raises(ValueError, match="columns"):
        pub.table(rows, columns=("model", "nonsense"))
    with pytest.raises(ValueError, match="metric"):
        pub.results(metric="BLEURT")


def _row(**changes):
    return dataclasses.replace(pub.RESULTS[0], **changes)


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"value": 101.0}, "value"),
        ({"value": -0.1}, "value"),
        ({"value": float("nan")}, "finite"),
        ({"family": "transformer"}, "family"),
        ({"metric": "BLEURT"}, "metric"),
        ({"split": "train"}, "split"),
        ({"citation": "Vaswani et al."}, "citation"),
        ({"system_citation": "x"}, "system_citation"),
        ({"model": " "}, "model"),
        ({"training_flops": -1.0}, "training_flops"),
    ],
)
def test_invalid_rows_are_rejected(changes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _row(**changes)


def test_pretrained_must_be_bool():
    with pytest.raises(TypeError, match="pretrained"):
        _row(pretrained=1)


def test_model_sizes_are_valid_and_ordered():
    sizes = {s.model: s for s in pub.PAPER_MODEL_SIZES}
    assert sizes["Transformer (base)"].reported_millions == 65
    assert sizes["Transformer (big)"].reported_millions == 213
    assert sizes["BERT-base"].reported_millions == 110
    assert sizes["BERT-large"].reported_millions == 340
    for s in sizes.values():
        assert s.d_model % s.num_heads == 0
    with pytest.raises(ValueError, match="num_heads"):
        dataclasses.replace(pub.PAPER_MODEL_SIZES[0], num_heads=0)


def test_training_flops_formula_and_validation():
    assert pub.training_flops_from_gpu_time(1, 1, 1.0) == 3600e12
    with pytest.raises(ValueError, match="num_gpus"):
        pub.training_flops_from_gpu_time(1, 0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        pub.training_flops_from_gpu_time(-1, 1, 1.0)


def test_paper_transformer_matches_table_3_within_three_percent_and_shares_embeddings():
    for size in pub.PAPER_MODEL_SIZES[:2]:  # Transformer base and big
        model = pub.paper_transformer(size)
        assert next(model.parameters()).is_meta
        assert model.src_embed.weight is model.tgt_embed.weight is model.out_proj.weight
        n = count_parameters(model)
        assert abs(n / 1e6 - size.reported_millions) / size.reported_millions < 0.03
        separate = count_parameters(pub.paper_transformer(size, share_source=False))
        assert separate - n == size.vocab_size * size.d_model  # one more embedding matrix


def test_paper_transformer_rejects_other_sizes():
    with pytest.raises(TypeError, match="PaperModelSize"):
        pub.paper_transformer({"d_model": 512})
