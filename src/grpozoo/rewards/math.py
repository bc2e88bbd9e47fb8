"""Math answer equivalence through math-verify."""

from __future__ import annotations


def math_equal(answer: str, gold: str) -> bool:
    """Whether ``answer`` is mathematically equivalent to ``gold`` (math-verify's parse + verify).

    An unparseable gold answer is an error, never a free reward.
    """
    from math_verify import parse, verify

    gold_parsed = parse(_as_math(gold))
    if not gold_parsed:
        raise ValueError(f"gold answer {gold!r} cannot be parsed by math-verify")
    answer_parsed = parse(_as_math(answer))
    return bool(answer_parsed) and bool(verify(gold_parsed, answer_parsed))


def _as_math(text: str) -> str:
    # math-verify looks for LaTeX or boxed content; a bare value is wrapped so it parses as one
    return text if ("\\" in text or "$" in text) else f"${text}$"
