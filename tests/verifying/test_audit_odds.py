"""The odds `audit --sample` states: exact hypergeometric, checked against
math.comb, and the sample size it recommends."""

from math import ceil, comb

import pytest

from merkle.verifying.audit import catch_probability, samples_needed


@pytest.mark.parametrize("total,sampled,share", [(100, 10, 0.05), (12000, 120, 0.01), (500, 500, 0.002), (7, 0, 0.5)])
def test_catch_probability_is_hypergeometric(total, sampled, share):
    bad = ceil(total * share)
    want = 1 - comb(total - bad, sampled) / comb(total, sampled)
    assert catch_probability(total, sampled, share) == pytest.approx(want, abs=1e-12)


def test_samples_needed_is_the_smallest_that_reaches_the_confidence():
    n = samples_needed(12000, 0.01, 0.99)
    assert catch_probability(12000, n, 0.01) >= 0.99 > catch_probability(12000, n - 1, 0.01)
