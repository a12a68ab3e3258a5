"""The robust line fit reproduces the NumPyro tutorial's published posterior."""

import numpy as np

from gaiadist.examples import fit_line, line_data

# The tutorial's ArviZ summary (2 chains x 2000 draws): mean, sd.
PUBLISHED = {"m": (1.007, 0.056), "b": (0.051, 0.078), "Q": (0.666, 0.127)}


def test_line_data_are_the_tutorials():
    data = line_data()
    assert data["x"].shape == (15,)
    assert np.all(np.diff(data["x"]) > 0) and np.all(np.abs(data["x"]) < 2)
    # Points on the line are within their errors of y = x; the posterior
    # test below is what shows these are the tutorial's very points.
    good = ~data["outlier"]
    assert np.all(np.abs(data["y"][good] - data["x"][good]) < 4 * data["yerr"][good])
    assert 0 < data["outlier"].sum() < 8


def test_line_fit_reproduces_published_posterior():
    draws = fit_line().get_samples()
    for name, (mean, sd) in PUBLISHED.items():
        values = np.asarray(draws[name])
        assert values.shape == (4000,)
        # Monte Carlo error of the mean is about sd / 50 here.
        assert abs(values.mean() - mean) < 0.15 * sd, (name, values.mean())
        assert abs(values.std() / sd - 1) < 0.1, (name, values.std())
