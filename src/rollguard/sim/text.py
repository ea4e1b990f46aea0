"""Hook for response texts (``response_text``), off unless a scenario sets ``response_text``.

The generator works on whole batches like the rest of the simulator. A text generator is a callable
``(TextContext, numpy Generator) -> list[str | None]`` returning one entry per event of the batch
(``None`` = no text). Generators are registered by kind::

    register_text_generator("my_kind", lambda spec, scenario: my_generator)

and chosen in a scenario by ``Scenario.response_text = TextSpec(kind="my_kind", params={...})``.
An :class:`~rollguard.sim.scenario.Injection` with ``metric="text"`` changes nothing numeric; it marks
events (cohort, arms, time window as for any injection) and its ``params`` reach the generator in
``TextContext.markers``, so a change of register in one cohort of the canary is expressed like any
other injection. The built-in ``templates`` kind builds short texts from per-``input_class``
vocabularies; ``Injection(metric="text", params={"register": "hedging"})`` switches the marked events to
a hedging register. Richer generators (issue 6) plug in without changing the scenario model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rollguard.sim.scenario import Injection, Scenario, ScenarioError, TextSpec


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
    "hedging": [
        "I might be wrong, but perhaps",
        "It is possible that",
        "I cannot be certain, however",
        "Arguably, and with caveats,",
    ],
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
        for st, c, reg, k, w, p in zip(
            ctx.status.tolist(),
            ctx.combo.tolist(),
            register.tolist(),
            lengths.tolist(),
            words,
            pick,
            strict=True,
        ):
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
    scenario: Scenario,
    combo_match: list[npt.NDArray[np.bool_]],
    combo: npt.NDArray[np.int64],
    arm: npt.NDArray[np.int8],
    t: npt.NDArray[np.float64],
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


# ---- "sentences": natural-looking answers per input class, registers, off-topic drift, finite pools ----
# Each input class has sentence templates whose {slots} are filled from class-specific vocabularies, so
# classes differ in topic and phrasing, and answers within a class vary like real ones. Params:
#   dimension      segment dimension that selects the templates (default input_class)
#   pool_size      0 = every answer composed afresh; N > 0 = answers drawn from a fixed pool of N per
#                  (class, register, topic), the same for every seed (benchmarks embed the pools once)
#   pool_seed      seed of the pools (default 0)
# Injection params (metric="text"): register (neutral | hedging | formal | terse), topic (an input class
# whose templates the marked answers use instead: off-topic drift), share (marked events affected, 1.0).
_SENTENCES: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "chat": (
        [
            "For your {occasion} I would suggest {activity} with {company}.",
            "A good {item} to try is {name}, many people enjoy it on {day}.",
            "You could plan {activity} this {day} and keep it {adj}.",
            "If you want something {adj}, {activity} with {company} works well.",
        ],
        {
            "occasion": ["weekend", "birthday", "holiday", "evening", "day off", "anniversary"],
            "activity": [
                "a picnic",
                "a museum visit",
                "a short hike",
                "a movie night",
                "a cooking class",
                "a bike ride",
                "a board game evening",
            ],
            "company": ["friends", "your family", "your partner", "colleagues", "the kids"],
            "item": ["book", "recipe", "film", "album", "podcast", "board game"],
            "name": ["a classic novel", "a lemon pasta", "an old comedy", "a jazz record", "a travel show"],
            "day": ["Saturday", "Sunday", "Friday night", "a rainy afternoon"],
            "adj": ["simple", "relaxed", "fun", "cheap", "cozy"],
        },
    ),
    "coding": (
        [
            "Call {func} before you {verb} the {obj}, otherwise a {err} is raised.",
            "The {err} comes from {cause}; fix it by {fix}.",
            "Use a {struct} to store the {obj} and iterate over it with {loop}.",
            "Add a unit test that checks the {obj} after you {verb} it.",
        ],
        {
            "func": ["open()", "connect()", "validate()", "load_config()", "init_cache()", "flush()"],
            "verb": ["parse", "serialise", "update", "sort", "close", "index"],
            "obj": ["list", "config file", "database row", "response body", "socket", "dictionary"],
            "err": ["TypeError", "KeyError", "timeout error", "null pointer exception", "IndexError"],
            "cause": [
                "a missing import",
                "an off-by-one index",
                "a None value",
                "a stale cache",
                "a wrong type annotation",
            ],
            "fix": [
                "checking the input first",
                "adding a default value",
                "catching the exception",
                "pinning the dependency",
                "rewriting the loop",
            ],
            "struct": ["dictionary", "set", "deque", "dataclass", "generator"],
            "loop": ["a for loop", "a list comprehension", "enumerate", "zip"],
        },
    ),
    "summarization": (
        [
            "The {doc} covers {topic}; its main finding is that {finding}.",
            "In short, the {doc} argues that {finding}, with {n} key points.",
            "The key points of the {doc} are {topic} and how {finding}.",
            "Overall the {doc} concludes that {finding}.",
        ],
        {
            "doc": ["report", "article", "meeting notes", "paper", "survey", "memo"],
            "topic": ["quarterly sales", "customer churn", "the new pricing", "remote work", "supply delays"],
            "finding": [
                "costs rose faster than revenue",
                "most users prefer the mobile app",
                "delays came from one supplier",
                "the pilot should be extended",
                "satisfaction improved after the redesign",
            ],
            "n": ["three", "four", "five", "two"],
        },
    ),
    "billing": (
        [
            "Your {charge} of {amount} was applied to your account on {date}.",
            "To {action} your {plan}, open {place} and choose {option}.",
            "The refund for your {charge} will reach your card within {period}.",
            "Your invoice for {date} lists the {charge} and the {plan}.",
        ],
        {
            "charge": ["monthly fee", "late fee", "upgrade charge", "annual subscription", "overage charge"],
            "amount": ["$9.99", "$24.00", "$120", "$4.50", "$59"],
            "date": ["March 3", "the first of the month", "last Friday", "June 12"],
            "action": ["cancel", "upgrade", "pause", "downgrade", "renew"],
            "plan": ["premium plan", "family plan", "basic plan", "business plan"],
            "place": ["Settings", "the billing page", "your account menu", "the app"],
            "option": ["Manage subscription", "Change plan", "Payment methods"],
            "period": ["five business days", "a week", "two billing cycles"],
        },
    ),
    "legal": (
        [
            "Under the {doc}, the {party} must {obligation} within {period}.",
            "This {clause} limits {liability} unless {condition}.",
            "The {party} may terminate the {doc} if {condition}.",
            "Consult counsel before you {obligation}, as the {clause} applies.",
        ],
        {
            "doc": ["agreement", "contract", "lease", "license", "policy"],
            "party": ["tenant", "supplier", "licensee", "employer", "buyer"],
            "obligation": [
                "give written notice",
                "pay the deposit",
                "return the equipment",
                "deliver the goods",
                "disclose the breach",
            ],
            "period": ["thirty days", "ten business days", "one year", "a reasonable time"],
            "clause": [
                "indemnity clause",
                "limitation clause",
                "confidentiality clause",
                "force majeure clause",
            ],
            "liability": ["damages", "indirect losses", "the seller's liability", "penalties"],
            "condition": [
                "there is gross negligence",
                "the other party breaches",
                "notice is not given",
                "payment is late",
            ],
        },
    ),
}
_SENTENCE_REGISTERS: dict[str, tuple[list[str], list[str]]] = {
    "neutral": (["", "", "Sure.", "Here you go:"], ["", "", "", "Hope this helps."]),
    "hedging": (
        [
            "I might be wrong, but",
            "It is possible that",
            "I am not entirely sure, but perhaps",
            "With some caveats,",
        ],
        ["Please double-check this.", "I could be mistaken.", "You may want to verify this.", ""],
    ),
    "formal": (
        ["Please note that", "Kindly be advised that", "We wish to inform you that"],
        ["Should you require further assistance, do not hesitate to contact us.", ""],
    ),
    "terse": ([""], [""]),
}
_FILL = re.compile(r"\{(\w+)\}")


def _compose(cls: str, register: str, rng: np.random.Generator) -> str:
    templates, slots = _SENTENCES.get(cls, _SENTENCES["chat"])
    openers, closers = _SENTENCE_REGISTERS[register]
    n = 1 if register == "terse" else 1 + int(rng.integers(0, 3))
    parts = []
    for _ in range(n):
        tpl = templates[int(rng.integers(len(templates)))]
        parts.append(_FILL.sub(lambda m: slots[m.group(1)][int(rng.integers(len(slots[m.group(1)])))], tpl))
    body = " ".join(parts)
    if register == "terse":
        body = body.split(",")[0].split(";")[0].rstrip(".") + "."
    opener = openers[int(rng.integers(len(openers)))]
    closer = closers[int(rng.integers(len(closers)))]
    if opener and register != "neutral":
        body = body[0].lower() + body[1:]
    return " ".join(p for p in (opener, body, closer) if p)


def sentence_pool(cls: str, register: str = "neutral", size: int = 200, seed: int = 0) -> list[str]:
    """The fixed pool of ``size`` answers of one (class, register) used when ``pool_size`` is set."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{cls}/{register}".encode())])
    return [_compose(cls, register, rng) for _ in range(size)]


def _sentences(spec: TextSpec, scenario: Scenario) -> TextGenerator:
    dim_name = str(spec.params.get("dimension", "input_class"))
    pool_size = int(spec.params.get("pool_size", 0))
    pool_seed = int(spec.params.get("pool_seed", 0))
    pools: dict[tuple[str, str], list[str]] = {}

    def answer(cls: str, register: str, rng: np.random.Generator, u: float) -> str:
        if pool_size <= 0:
            return _compose(cls, register, rng)
        pool = pools.get((cls, register))
        if pool is None:
            pool = pools[(cls, register)] = sentence_pool(cls, register, pool_size, pool_seed)
        return pool[int(u * len(pool))]

    def generate(ctx: TextContext, rng: np.random.Generator) -> list[str | None]:
        n = len(ctx.combo)
        register = ["neutral"] * n
        topic: list[str | None] = [None] * n
        for inj, mask in ctx.markers:
            reg = inj.params.get("register")
            if reg is not None and reg not in _SENTENCE_REGISTERS:
                names = list(_SENTENCE_REGISTERS)
                raise ScenarioError(f"text injection: unknown register {reg!r}; one of {names}")
            top = inj.params.get("topic")
            if top is not None and top not in _SENTENCES:
                raise ScenarioError(f"text injection: unknown topic {top!r}; one of {sorted(_SENTENCES)}")
            share = float(inj.params.get("share", 1.0))
            hit = mask & (rng.random(n) < share)
            for i in np.flatnonzero(hit).tolist():
                if reg is not None:
                    register[i] = str(reg)
                if top is not None:
                    topic[i] = str(top)
        classes = [seg.get(dim_name, "_other") for seg in ctx.segments]
        pick = rng.random(n).tolist()
        out: list[str | None] = []
        for i, (st, c) in enumerate(zip(ctx.status.tolist(), ctx.combo.tolist(), strict=True)):
            if st == 3:
                out.append("I'm sorry, but I can't help with that request.")
            elif st != 0:
                out.append(None)
            else:
                out.append(answer(topic[i] or classes[c], register[i], rng, pick[i]))
        return out

    return generate


register_text_generator("sentences", _sentences)
