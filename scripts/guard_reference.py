"""Reference values for crates/core/src/guard/tests.rs, computed independently of the
Rust code: the mixture likelihood ratio by numerical integration over the mixing
distribution (scipy.integrate.quad), its boundary by root finding (scipy.optimize.brentq),
the sample-ratio check by scipy.stats.chisquare. Run: python3 scripts/guard_reference.py
(needs scipy); paste its output into the tests when the method changes."""
import math
from scipy import integrate, optimize, stats


def log_mixture_ratio(d, v, tau2):
    """ln of the integral over theta ~ N(0, tau2) of the likelihood ratio
    exp(theta d / v - theta^2 / (2 v)) of N(theta, v) against N(0, v) at d."""
    tau = math.sqrt(tau2)
    def exponent(theta):
        return theta * d / v - theta * theta / (2 * v)
    # The integrand's peak, to integrate exp(exponent - peak) without overflow.
    peak_theta = d * tau2 / (v + tau2)
    peak = exponent(peak_theta) + stats.norm.logpdf(peak_theta, 0, tau)
    width = math.sqrt(v * tau2 / (v + tau2))
    f = lambda th: math.exp(exponent(th) + stats.norm.logpdf(th, 0, tau) - peak)
    value, _ = integrate.quad(f, peak_theta - 40 * width, peak_theta + 40 * width,
                              epsabs=0, epsrel=1e-13, limit=200)
    return peak + math.log(value)


def radius(v, tau2, alpha):
    target = math.log(1 / alpha)
    return optimize.brentq(lambda r: log_mixture_ratio(r, v, tau2) - target,
                           1e-12, 1e3 * math.sqrt(v + tau2), xtol=1e-15, rtol=1e-14)


def rates(et, nt, ec, nc, limit, alpha, mixture, count_error):
    def arm(e, n):
        p = min(e / n, 1.0)
        s = (e + 0.5) / (n + 1)
        return p, s * (1 - s) / n + 2 * (count_error * p) ** 2
    (pt, vt), (pc, vc) = arm(et, nt), arm(ec, nc)
    tau2 = (mixture * (et + ec + 0.5) / (nt + nc + 1)) ** 2
    k = 1 + limit
    d = pt - k * pc
    log_ev = log_mixture_ratio(d, vt + k * k * vc, tau2) if d > 0 else 0.0
    rad = lambda r: radius(vt + (1 + r) ** 2 * vc, tau2, alpha)
    g = lambda r: pt - (1 + r) * pc - rad(r)
    h = lambda r: (1 + r) * pc - pt - rad(r)
    low = -1.0 if g(-1.0) <= 0 else optimize.brentq(g, -1.0, 1e3, xtol=1e-14)
    # h rises and falls again past the estimate: its first zero, if it gets above 0.
    peak = optimize.minimize_scalar(lambda r: -h(r), bounds=(low, 1e3), method="bounded",
                                    options={"xatol": 1e-12}).x
    high = optimize.brentq(h, low, peak, xtol=1e-14) if h(peak) > 0 else math.inf
    return log_ev, low, high


print("// log_mixture_ratio(d, v, tau2)")
for d, v, tau2 in [(0.01, 1e-5, 1e-4), (0.003, 2.5e-6, 4e-6), (-0.02, 4e-5, 1e-4),
                   (0.5, 0.04, 0.25), (0.001, 1e-6, 1e-8)]:
    print(f"({d!r}, {v!r}, {tau2!r}, {float(log_mixture_ratio(d, v, tau2))!r}),")
print("// mixture_radius(v, tau2, alpha)")
for v, tau2, alpha in [(1e-5, 1e-4, 0.05), (2.5e-6, 4e-6, 0.0166666), (0.04, 0.25, 0.01)]:
    print(f"({v!r}, {tau2!r}, {alpha!r}, {radius(v, tau2, alpha)!r}),")
print("// sample_ratio_p_value(t, c, share, 0)")
for t, c, w in [(1000, 9000, 0.1), (1100, 9000, 0.1), (5100, 4900, 0.5), (2400, 7600, 0.25)]:
    n = t + c
    p = stats.chisquare([t, c], f_exp=[n * w, n * (1 - w)]).pvalue
    print(f"({t}, {c}, {w!r}, {float(p)!r}),")
print("// sample_ratio_p_value(t, c, share, error): a z-test of the treatment's count")
for t, c, w, e in [(2200, 17800, 0.1, 0.0081), (51000, 49000, 0.5, 0.0081)]:
    n = t + c
    dev = (1 - w) * t - w * c
    var = n * w * (1 - w) + e ** 2 * (((1 - w) * t) ** 2 + (w * c) ** 2)
    print(f"({t}, {c}, {w!r}, {e!r}, {float(2 * stats.norm.sf(abs(dev) / math.sqrt(var)))!r}),")
print("// sample_ratio(t, c, share, error) always-valid p = min(1, 1/mixture ratio)")
for t, c, w, e in [(2200, 17800, 0.1, 0.0081), (1000, 9000, 0.1, 0.0081), (4700, 5300, 0.5, 0.0)]:
    n = t + c
    var = (n * w * (1 - w) + e ** 2 * (((1 - w) * t) ** 2 + (w * c) ** 2)) / n ** 2
    tau2 = (0.1 * w * (1 - w)) ** 2
    p = min(1.0, math.exp(-log_mixture_ratio(t / n - w, var, tau2)))
    print(f"({t}, {c}, {w!r}, {e!r}, {float(p)!r}),")
print("// rates(events_t, units_t, events_c, units_c, limit, alpha, mixture, error) -> (ln evidence, low, high)")
for case in [(60, 2000, 400, 18000, 0.1, 0.05, 0.5, 0.0),
             (90, 2000, 360, 18000, 0.0, 0.0166666, 0.5, 0.0081),
             (40, 5000, 100, 5000, 0.0, 0.05, 1.0, 0.0)]:
    print(f"({', '.join(repr(x) for x in case)}, {tuple(float(x) for x in rates(*case))!r}),")
