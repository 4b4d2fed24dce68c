"""The VPA baseline on worked examples: bucket edges, the percentile as the end of the bucket
where the cumulative weight reaches it, exponential decay with a 24 h half-life, and the target
p90 x 1.15 floored at VPA's minimum."""

import numpy as np
import pytest

from neurokube.forecast.vpa import HistogramSettings, VpaSettings, decayed_percentile, vpa_target

H = HistogramSettings(first_bucket=10.0, max_value=1000.0, bucket_growth=1.05)
DAY = 86400.0


def test_bucket_edges_grow_geometrically():
    e = H.edges()
    assert e[0] == 0 and e[1] == pytest.approx(10.0) and e[2] == pytest.approx(20.5)
    np.testing.assert_allclose(np.diff(e)[1:] / np.diff(e)[:-1], 1.05)
    assert e[-1] >= 1000.0


def test_percentile_is_the_end_of_the_bucket_reaching_it():
    # 10 equal-weight samples: nine at 5 m (bucket [0, 10)), one at 15 m (bucket [10, 20.5))
    values = np.array([5.0] * 9 + [15.0])
    t = np.zeros(10)
    w = np.ones(10)
    assert decayed_percentile(values, t, w, 0.9, H, DAY, now_s=0) == pytest.approx(10.0)
    assert decayed_percentile(values, t, w, 0.95, H, DAY, now_s=0) == pytest.approx(20.5)


def test_samples_a_half_life_older_weigh_half():
    # one recent sample at 15 m (weight 1), two samples a day older at 5 m (weight 0.5 each):
    # cumulative weight: bucket 0 -> 1.0 of 2.0 = 50 %, so p50 ends bucket 0, p60 ends bucket 1
    values = np.array([5.0, 5.0, 15.0])
    t = np.array([0.0, 0.0, DAY])
    w = np.ones(3)
    assert decayed_percentile(values, t, w, 0.5, H, DAY, now_s=DAY) == pytest.approx(10.0)
    assert decayed_percentile(values, t, w, 0.6, H, DAY, now_s=DAY) == pytest.approx(20.5)


def test_target_is_p90_plus_15_percent_with_vpa_minimum():
    s = VpaSettings(cpu=H)
    values = np.array([100.0] * 10)
    t = np.zeros(10)
    p90 = decayed_percentile(values, t, np.ones(10), 0.9, H, DAY, 0)
    assert vpa_target(values, t, np.ones(10), "cpu", 0, s) == pytest.approx(p90 * 1.15)
    assert vpa_target(np.array([1.0]), np.zeros(1), np.ones(1), "cpu", 0, s) == pytest.approx(25.0)
    assert np.isnan(vpa_target(np.array([]), np.array([]), np.array([]), "cpu", 0, s))
