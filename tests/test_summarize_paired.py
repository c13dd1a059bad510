"""``benchmarks/summarize.py``: a learner's margin over Naive, paired by seed, in the standard tables."""

import math

import pytest


@pytest.fixture(scope="module")
def summarize(benchmark_script):
    return benchmark_script("summarize")


def _row(runs):
    finite = [x for x in runs if not math.isnan(x)]
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((x - mean) ** 2 for x in finite) / len(finite))
    stats = {"mean": mean, "std": std, "runs": runs}
    return {"accuracy": stats, "forgetting": stats, "bwt": stats, "diverged_runs": 0}


def test_the_margin_is_paired_by_seed_not_the_difference_of_two_spreads(summarize):
    # the stream order moves both learners alike (0.1 to 0.3): unpaired their means differ by 2 points
    # inside a 8-point spread each; paired, the learner is 2 points above Naive on every seed
    table = {"Naive": _row([0.1, 0.2, 0.3]), "Learner": _row([0.12, 0.22, 0.32])}
    assert summarize.paired_against(table, "Learner") == "+2.0 ± 0.0"
    table["Learner"] = _row([0.13, 0.19, 0.30])  # +3, -1, 0 points
    assert summarize.paired_against(table, "Learner") == "+0.7 ± 1.7"  # population std: sqrt(26 / 9)
    assert summarize.paired_against(table, "Naive") == "-"
    assert summarize.paired_against({"Learner": table["Learner"]}, "Learner") == "-"  # no Naive
    table["Short"] = _row([0.2, 0.2])  # another number of seeds: no pairing
    table["Diverged"] = _row([0.2, float("nan"), 0.2])
    assert summarize.paired_against(table, "Short") == "-"
    assert summarize.paired_against(table, "Diverged") == "-"
    lines = summarize.standard_benchmarks({"results": {"s/class/online": table}, "config": {}})
    assert any(line.startswith("| Learner |") and line.endswith("| +0.7 ± 1.7 | 0 |") for line in lines)
