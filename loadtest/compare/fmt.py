"""Number formatting shared by the benchmark harnesses' markdown tables."""


def mean(values):
    """The mean of the values that are not None (None when there is none)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def fmt_ms(us):
    """Microseconds as milliseconds: three decimals below 10 ms, one above."""
    return "—" if us is None else f"{us / 1000:.3f}" if us < 10_000 else f"{us / 1000:.1f}"


def fmt_rps(v):
    return "—" if v is None else f"{v:,.0f}"


def fmt_err(s):
    """A load tool summary's error rate, with the errors by kind."""
    if s.get("error_rate") is None:
        return "—"
    text = f"{s['error_rate'] * 100:.2f} %"
    if s.get("errors"):
        text += " (" + ", ".join(f"{k} {n:,}" for k, n in s["errors"].items()) + ")"
    return text
