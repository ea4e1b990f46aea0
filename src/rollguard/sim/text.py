"""Hook for response texts (``response_text``), off unless a scenario sets ``response_text``.

The generator works on whole batches like the rest of the simulator. A text generator is a callable
``(TextContext, numpy Generator) -> list[str | None]`` returning one entry per event of the batch
(``None`` = no text). Generators are registered by kind::

    register_text_generator("my_kind", lambda spec, scenario: my_generator)

and chosen in a scenario by ``Scenario.response_text = TextSpec(kind="my_kind", params={...})``.
An :class:`~rollguard.sim.model.Injection` with ``metric="text"`` changes nothing numeric; it marks
events (cohort, arms, time window as for any injection) and its ``params`` reach the generator in
``TextContext.markers``, so a change of register in one cohort of the canary is expressed like any
other injection. The built-in ``templates`` kind builds short texts from per-``input_class``
vocabularies; ``Injection(metric="text", params={"register": "hedging"})`` switches the marked events to
a hedging register. Richer generators (issue 6) plug in without changing the scenario model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rollguard.sim.model import Injection, Scenario, ScenarioError, TextSpec


@dataclass
class TextContext:
    """What a text generator sees of one batch (arrays have one entry per event)."""

    scenario: Scenario
    segments: list[dict[str, str]]  # segment of each combination, indexed by ``combo``
    combo: npt.NDArray[np.int64]
    arm: npt.NDArray[np.int8]  # 0 control, 1 canary, 2 shadow
    status: npt.NDArray[np.int8]  # 0 ok, 1 error, 2 timeout, 3 refusal
    tokens_out: npt.NDArray[np.int64]  # -1 when absent
    t: npt.NDArray[np.float64]  # scenario seconds of the request
    markers: list[tuple[Injection, npt.NDArray[np.bool_]]] = field(default_factory=list)


TextGenerator = Callable[[TextContext, np.random.Generator], list[str | None]]
TextFactory = Callable[[TextSpec, Scenario], TextGenerator]

_REGISTRY: dict[str, TextFactory] = {}


def register_text_generator(kind: str, factory: TextFactory) -> None:
    """Make ``TextSpec(kind=kind)`` build its generator with ``factory(spec, scenario)``."""
    _REGISTRY[kind] = factory


def build_text_generator(spec: TextSpec, scenario: Scenario) -> TextGenerator:
    try:
        factory = _REGISTRY[spec.kind]
    except KeyError:
        raise ScenarioError(
            f"response_text.kind: unknown {spec.kind!r}; registered: {sorted(_REGISTRY)}"
        ) from None
    return factory(spec, scenario)


_VOCAB_TEXT: dict[str, str] = {
    "chat": "sure happy help idea today thanks great question think maybe friend weekend plan recipe "
    "travel music movie book suggest enjoy",
    "coding": "function return variable loop error compile python type class method test import list "
    "index refactor bug stack async query",
    "summarization": "summary key points document report section overall main findings conclusion "
    "highlights brief outline article notes",
    "billing": "invoice payment charge refund account balance plan subscription card receipt "
    "billing cycle credit upgrade cancel",
    "legal": "contract clause liability agreement party terms jurisdiction obligation consent "
    "compliance statute counsel provision breach",
    "_other": "answer information request response detail example context option result",
}
_VOCAB: dict[str, list[str]] = {k: v.split() for k, v in _VOCAB_TEXT.items()}
_REGISTERS: dict[str, list[str]] = {
    "neutral": ["Here is", "This is", "In short,", "Answer:"],
    "hedging": ["I might be wrong, but perhaps", "It is possible that", "I cannot be certain, however",
                "Arguably, and with caveats,"],
    "terse": ["", "", "Ok.", "Done."],
}


def _templates(spec: TextSpec, scenario: Scenario) -> TextGenerator:
    default_register = str(spec.params.get("register", "neutral"))
    words_per_token = float(spec.params.get("words_per_token", 0.1))
    max_words = int(spec.params.get("max_words", 40))
    dim_name = str(spec.params.get("dimension", "input_class"))

    def generate(ctx: TextContext, rng: np.random.Generator) -> list[str | None]:
        n = len(ctx.combo)
        register = np.full(n, -1, dtype=np.int64)
        names = list(_REGISTERS)
        for inj, mask in ctx.markers:
            reg = str(inj.params.get("register", "hedging"))
            if reg not in _REGISTERS:
                raise ScenarioError(f"text injection: unknown register {reg!r}; one of {names}")
            register[mask] = names.index(reg)
        register[register < 0] = names.index(default_register)
        lengths = np.clip((ctx.tokens_out.clip(0) * words_per_token).astype(np.int64), 3, max_words)
        vocabs = [_VOCAB.get(seg.get(dim_name, ""), _VOCAB["_other"]) for seg in ctx.segments]
        sizes = np.array([len(v) for v in vocabs])
        # word indices drawn in one go: row i uses the first lengths[i] of max_words columns
        words = (rng.random((n, max_words)) * sizes[ctx.combo][:, None]).astype(np.int64).tolist()
        pick = rng.random(n).tolist()
        out: list[str | None] = []
        for st, c, reg, k, w, p in zip(ctx.status.tolist(), ctx.combo.tolist(), register.tolist(),
                                       lengths.tolist(), words, pick, strict=True):
            if st == 3:
                out.append("I'm sorry, but I can't help with that request.")
            elif st != 0:
                out.append(None)
            else:
                vocab = vocabs[c]
                openers = _REGISTERS[names[reg]]
                body = " ".join([vocab[j] for j in w[:k]])
                out.append(f"{openers[int(p * len(openers))]} {body}.".strip())
        return out

    return generate


register_text_generator("templates", _templates)


def text_markers(
    scenario: Scenario, combo_match: list[npt.NDArray[np.bool_]], combo: npt.NDArray[np.int64],
    arm: npt.NDArray[np.int8], t: npt.NDArray[np.float64],
) -> list[tuple[Injection, npt.NDArray[np.bool_]]]:
    """Events marked by each ``metric="text"`` injection (``combo_match`` is per injection)."""
    out: list[tuple[Injection, npt.NDArray[np.bool_]]] = []
    arm_index = {"control": 0, "canary": 1, "shadow": 2}
    for inj, match in zip(scenario.injections, combo_match, strict=True):
        if inj.metric != "text":
            continue
        arms = np.zeros(3, dtype=bool)
        for a in inj.arms:
            arms[arm_index[a]] = True
        mask = match[combo] & arms[arm] & (t >= inj.start_s)
        if inj.end_s is not None:
            mask &= t < inj.end_s
        out.append((inj, mask))
    return out

