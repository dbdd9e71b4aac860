"""A fifth domain, defined entirely here: capital cities, one sentence a fact, each checked
against the reference's table. Used by tests/test_domains.py to prove that a domain is one
record plus one task folder."""

from __future__ import annotations


from halt_eval.domains import Domain, Source
from halt_eval.types import Judgement, Verdict

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi"}


class CapitalJudge:
    """A sentence naming a country is correct when it also names that country's capital."""

    name = "capitals"
    version = "1"

    def spec(self) -> dict:
        return {"name": self.name, "version": self.version}

    def judge(self, batch):
        out = []
        for req in batch:
            table = req.response.reference["capitals"]
            verdicts = []
            for f in req.fragments:
                country = next((c for c in table if c in f.text), None)
                if country is None:
                    verdicts.append(Verdict("unverifiable", "capitals@1", "no_country"))
                elif table[country] in f.text:
                    verdicts.append(Verdict("correct", "capitals@1", "capital_named",
                                            evidence={"country": country}))
                else:
                    verdicts.append(Verdict("incorrect", "capitals@1", "wrong_capital",
                                            evidence={"country": country, "capital": table[country]}))
            out.append(Judgement(tuple(verdicts)))
        return out


def load_toy(rows, *, task, domain, source):
    return [domain.doc(task, source, country, f"What is the capital of {country}?",
                       {"capitals": CAPITALS})
            for country in CAPITALS]


DOMAIN = Domain(
    name="capitals",
    description="capital cities, one sentence a fact",
    kind="independent",
    fragment="sentence",
    splitter="sentences",
    judge="toy_record:CapitalJudge",
    n_desired="fixed:1",
    reference_help='{"capitals": {country: capital}}',
    sources={"toy": Source("toy", "toy_record:load_toy")},
)

