"""The drift monitor's statistics, in pure Python (the web process has neither scipy nor torch):
a two-sample Kolmogorov-Smirnov test of new films' feature distances against the validation
films' (kept as quantiles in the bundle), a chi-square test of a prediction mix against the
validation mix, a one-sided two-proportion test, and Cohen's kappa with its interval."""

import bisect
import math

from xrayweb.review.stats import Z95, cohen_kappa


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (the KS statistic's limit)."""
    if lam < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, 2 * total))


def reference_cdf(quantiles: list[float], x: float) -> float:
    """A reference sample's distribution at ``x``, from its evenly spaced quantiles (0% to
    100%), linear between them."""
    steps = len(quantiles) - 1
    if x < quantiles[0]:
        return 0.0
    if x >= quantiles[-1]:
        return 1.0
    i = bisect.bisect_right(quantiles, x) - 1
    low, high = quantiles[i], quantiles[i + 1]
    within = (x - low) / (high - low) if high > low else 1.0
    return (i + within) / steps


def ks_against_reference(
    values: list[float], quantiles: list[float], reference_n: int
) -> tuple[float, float]:
    """Two-sample KS statistic D and its asymptotic p-value, of ``values`` against a reference
    sample of ``reference_n`` films given by its quantiles (Stephens' small-sample
    correction, as in Numerical Recipes' kstwo)."""
    values = sorted(values)
    n = len(values)
    if n == 0 or reference_n == 0:
        raise ValueError("no films to compare")
    d = 0.0
    for i, x in enumerate(values):
        f = reference_cdf(quantiles, x)
        d = max(d, abs((i + 1) / n - f), abs(i / n - f))
    effective = math.sqrt(n * reference_n / (n + reference_n))
    return d, kolmogorov_sf((effective + 0.12 + 0.11 / effective) * d)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with ``df`` degrees of freedom (closed forms of the
    regularised upper incomplete gamma function at integer and half-integer shapes)."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    total = math.erfc(math.sqrt(half))
    term = math.sqrt(half) * 2 / math.sqrt(math.pi)  # half^(1/2) / Gamma(3/2)
    for i in range(1, (df + 1) // 2):
        total += math.exp(-half) * term
        term *= half / (i + 0.5)
    return min(1.0, total)


POOL_TO = 5.0


def mix_test(counts: dict[str, int], expected: dict[str, float]) -> tuple[float, float]:
    """A prediction mix against an expected one: the total variation distance (half the sum
    of the shares' differences) and the chi-square goodness-of-fit p-value. The rarest classes
    are pooled until every cell expects at least POOL_TO films (Cochran's rule: below it the
    chi-square p-value is unreliable), a class the expected mix never predicted with them."""
    n = sum(counts.values())
    if n == 0:
        raise ValueError("no predictions to compare")
    classes = sorted(set(counts) | set(expected))
    tvd = sum(abs(counts.get(c, 0) / n - expected.get(c, 0.0)) for c in classes) / 2
    cells = [(expected.get(c, 0.0) * n, counts.get(c, 0)) for c in classes]
    cells.sort()
    # Pool from the smallest expected count up until every cell expects at least POOL_TO.
    pooled, exp_acc, obs_acc = [], 0.0, 0
    for e, o in cells:
        exp_acc, obs_acc = exp_acc + e, obs_acc + o
        if exp_acc >= POOL_TO:
            pooled.append((exp_acc, obs_acc))
            exp_acc, obs_acc = 0.0, 0
    if obs_acc or exp_acc:
        if pooled:
            e, o = pooled.pop()
            pooled.append((e + exp_acc, o + obs_acc))
        else:
            pooled.append((exp_acc, obs_acc))
    if len(pooled) < 2:
        return tvd, 1.0
    statistic = sum((o - e) ** 2 / e for e, o in pooled if e > 0)
    return tvd, chi2_sf(statistic, len(pooled) - 1)


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def drop_test(before: tuple[int, int], after: tuple[int, int]) -> float:
    """One-sided p-value that the proportion ``after`` (successes, n) is lower than
    ``before`` (pooled two-proportion z-test)."""
    (a, n), (b, m) = before, after
    if n == 0 or m == 0:
        return 1.0
    pooled = (a + b) / (n + m)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    if se == 0:
        return 1.0
    return normal_sf((a / n - b / m) / se)


def kappa_interval(matrix: list[list[int]]) -> tuple[float | None, tuple[float, float] | None]:
    """Cohen's kappa and its large-sample 95% interval (Cohen 1960's standard error)."""
    kappa = cohen_kappa(matrix)
    n = sum(map(sum, matrix))
    if kappa is None or n == 0:
        return kappa, None
    observed = sum(matrix[i][i] for i in range(len(matrix))) / n
    rows = [sum(r) for r in matrix]
    cols = [sum(c) for c in zip(*matrix, strict=True)]
    expected = sum(r * c for r, c in zip(rows, cols, strict=True)) / (n * n)
    se = math.sqrt(observed * (1 - observed) / n) / (1 - expected)
    return kappa, (max(-1.0, kappa - Z95 * se), min(1.0, kappa + Z95 * se))
