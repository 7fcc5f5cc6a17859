"""Standard errors and binary normalisation by hand."""

import math

import pytest

from evalsuite.stats import binary_from_logprobs, entropy_bits, ratio_of_sums


def test_entropy_and_binary_normalisation():
    assert entropy_bits(0.5) == 1.0 and entropy_bits(1.0) == 0.0
    assert binary_from_logprobs(math.log(0.2), math.log(0.6)) == pytest.approx(0.25)
    assert binary_from_logprobs(0.0, -1000.0) == pytest.approx(1.0)  # no overflow
    assert binary_from_logprobs(-1000.0, 0.0) == pytest.approx(0.0)


def test_ratio_of_sums_stderr_by_hand():
    # r = (2+4)/(1+1) = 3; residuals 2-3 = -1 and 4-3 = 1; se = sqrt(2/1 * 2) / 2 = 1
    m = ratio_of_sums([2.0, 4.0], [1.0, 1.0])
    assert m.value == 3.0 and m.stderr == pytest.approx(1.0)
