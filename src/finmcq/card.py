"""The dataset card: a README.md with YAML front matter that travels with every export.

It says what the dataset is, how it was built (models, stages, checks, seed, counts), how topics,
answer letters and difficulties are spread, where the questions came from and under which
licence, what each provenance field means, what the data is for, and what the contamination
check found. Every number is read from the run's stats file, so the card cannot disagree with
the build; the tests compare the two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from finmcq import __version__
from finmcq.export_lmeval import LM_EVAL_FILES
from finmcq.records import KMMLU_LICENSE, LETTERS
from finmcq.rundir import Run, load_run

KMMLU_HUB_ID = "HAERAE-HUB/KMMLU"
KMMLU_CITATION = """@article{son2024kmmlu,
  title={KMMLU: Measuring Massive Multitask Language Understanding in Korean},
  author={Son, Guijin and Lee, Hanwool and Kim, Sungdong and Kim, Seungone and Muennighoff,
          Niklas and Choi, Taekyoon and Park, Cheonbok and Yoo, Kang Min and Biderman, Stella},
  journal={arXiv preprint arXiv:2402.11548},
  year={2024}
}"""

DIFFICULTY_ORDER: tuple[str, ...] = ("easy", "medium", "hard")

# What each export holds and how to load it; the card's "Files" section.
_FILES: dict[str, str] = {
    "jsonl": (
        "- `pairs.jsonl`: one training pair per line, `{item_id, step, prompt, response}`; two "
        "per question (step 1 → solution, step 2 → letter).\n"
        "- `items.jsonl` (if exported): everything about each question (see *Provenance "
        "fields*).\n\n"
        "```python\nfrom datasets import load_dataset\n"
        "pairs = load_dataset(\"json\", data_files=\"pairs.jsonl\", split=\"train\")\n```"
    ),
    "parquet": (
        "- `pairs.parquet`: the training pairs, columns `item_id, step, prompt, response`.\n"
        "- `items.parquet` (if exported): everything about each question.\n\n"
        "```python\nfrom datasets import load_dataset\n"
        "pairs = load_dataset(\"parquet\", data_files=\"pairs.parquet\", split=\"train\")\n```"
    ),
    "hf": (
        "- `pairs/`: a `datasets.DatasetDict` (split `train`) of the training pairs, columns "
        "`item_id, step, prompt, response`.\n"
        "- `items/` (if exported): a `DatasetDict` of everything about each question.\n\n"
        "```python\nfrom datasets import load_from_disk\n"
        "pairs = load_from_disk(\"pairs\")[\"train\"]\n```"
    ),
    "hub": (
        "Two configs: `pairs` (default; columns `item_id, step, prompt, response`) and, if "
        "exported, `items` (everything about each question).\n\n"
        "```python\nfrom datasets import load_dataset\n"
        "pairs = load_dataset(\"{repo}\", \"pairs\", split=\"train\")\n```"
    ),
    "chat": (
        "- `chat.jsonl`: one conversation per line, `{\"messages\": [system, user, assistant]}`, "
        "two per question (step 1 and step 2) — the `messages` format that TRL's "
        "`SFTTrainer` and axolotl's `chat_template` dataset type read as is.\n\n"
        "```python\nfrom datasets import load_dataset\nfrom trl import SFTTrainer\n"
        "train = load_dataset(\"json\", data_files=\"chat.jsonl\", split=\"train\")\n"
        "trainer = SFTTrainer(model=MODEL, train_dataset=train)\n```\n\n"
        "axolotl:\n\n```yaml\ndatasets:\n  - path: chat.jsonl\n    ds_type: json\n"
        "    type: chat_template\n    field_messages: messages\n```"
    ),
    "lm-eval": LM_EVAL_FILES,
}


def dataset_card(run_dir: Path | Run, *, export_format: str | None = None,
                 data_files: Mapping[str, str] | None = None, repo_id: str = "OWNER/NAME") -> str:
    """The dataset card (README.md text) of the newest finished build in ``run_dir``.

    ``export_format`` ("hf", "jsonl", "parquet", "chat" or "hub") adds how to load that export;
    ``data_files`` (config name → file glob) adds hub ``configs`` to the front matter so that
    ``load_dataset(repo_id, CONFIG)`` finds the files.
    """
    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
    stats, items = run.stats, run.items
    files = _FILES.get(export_format or "", "").replace("{repo}", repo_id)
    sections = [
        _front_matter(stats, items, data_files),
        f"# {_title(stats)}\n",
        _what_it_is(run),
        ("## Files\n\n" + files + "\n") if files else "",
        _how_built(stats),
        _distributions(stats),
        "## Source and licence\n\n" + licence_text(items) + "\n",
        _provenance(items),
        _intended_use(),
        "## Contamination check\n\n" + contamination_text(stats) + "\n",
        "## Reference date\n\n" + reference_date_text(stats) + "\n",
        "## Citation\n\nThe source benchmark:\n\n```bibtex\n" + KMMLU_CITATION + "\n```\n",
    ]
    return "\n".join(s for s in sections if s)


def review_text(stats: Mapping[str, Any]) -> str:
    """What human review (``finmcq review``) did to this build, in one sentence."""
    review = stats.get("review") or {}
    if not review.get("reviewed"):
        return "No item was reviewed by a person (finmcq review) before this build."
    return (f"{review['reviewed']} items were reviewed by a person (finmcq review): "
            f"{review.get('accepted', 0)} accepted as built, {review.get('edited', 0)} edited "
            f"({review.get('re_solved', 0)} re-solved after a key or option change), "
            f"{review.get('rejected', 0)} rejected, and {review.get('replaced', 0)} rejected "
            "slots replaced by a new generation for the same topic and key letter.")


def reference_date_text(stats: Mapping[str, Any]) -> str:
    """The month rules and market facts were stated as of, and the items whose key depends on
    a dated rule (the judge's ``time_sensitive``), so users know what to refresh."""
    as_of = stats.get("as_of") or stats.get("settings", {}).get("as_of")
    text = (f"Rules, limits and market facts in every prompt were stated as of **{as_of}** "
            "(`--as-of`)." if as_of else "The build recorded no reference date (`--as-of`).")
    ts = stats.get("time_sensitive")
    if not isinstance(ts, Mapping) or not ts.get("judged"):
        return text + " No judge marked time-sensitive items (the second-answer judge was off)."
    return text + (
        f" The second-answer judge marked **{ts.get('count', 0):,} of {ts.get('judged', 0):,}** "
        "questions as time-sensitive: their key rests on a rule that can change (a "
        "deposit-protection limit, a listing rule, which law a rule sits in). They carry "
        "`quality.time_sensitive = true` in the items export; check or regenerate them when "
        "the rules change.")


def contamination_text(stats: Mapping[str, Any]) -> str:
    """One line on the contamination check: its result, or that it was not run."""
    result = stats.get("contamination")
    if not result:
        return "The contamination check was not run for this build."
    if isinstance(result, dict):
        parts = [f"{k}: {json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}"
                 for k, v in result.items()]
        return "Contamination check: " + "; ".join(parts) + "."
    return f"Contamination check: {result}."


def licence_text(items: Sequence[Mapping[str, Any]]) -> str:
    """The licence notice for the run's sources, said plainly."""
    rewritten = sum(1 for item in items if item.get("origin") == "rewrite")
    return licence_notice(source_licences(items), rewritten, len(items) - rewritten)


def licence_notice(licences: Sequence[str], rewritten: int, generated: int) -> str:
    """The licence notice from the distinct source licences and the origin counts."""
    text = (
        f"Source licence recorded per item: {', '.join(licences) or 'none recorded'}. The "
        f"{rewritten:,} rewritten questions are derivatives of their source questions; the "
        f"{generated:,} generated ones were written by the model with source questions as "
        f"examples. KMMLU is licensed {KMMLU_LICENSE}, which does not allow sharing adapted "
        "material: a dataset built from KMMLU contains derivatives of it, so check that licence "
        "before distributing one."
    )
    if any("ND" in licence for licence in licences):
        text += " This run's sources carry a no-derivatives licence."
    return text + " finmcq's code is Apache-2.0."


def source_licences(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The distinct licences recorded in the items' provenance."""
    return sorted({str(item["provenance"].get("license")) for item in items
                   if item.get("provenance")})


def _hub_licence(items: Sequence[Mapping[str, Any]]) -> str:
    licences = source_licences(items)
    if any("BY-ND" in lic for lic in licences):
        return "cc-by-nd-4.0"
    if licences and all(lic.startswith("CC BY 4.0") for lic in licences):
        return "cc-by-4.0"
    return "other"


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def _is_fake(stats: Mapping[str, Any]) -> bool:
    return any(str(m).startswith("fake-") for m in stats.get("models", {}).values())


def _title(stats: Mapping[str, Any]) -> str:
    return (f"Korean financial-market 7-option MCQ — {stats['questions']['delivered']:,} "
            f"questions, {stats.get('pairs', 0):,} training pairs (finmcq)")


def _front_matter(stats: Mapping[str, Any], items: Sequence[Mapping[str, Any]],
                  data_files: Mapping[str, str] | None) -> str:
    source = str(stats.get("source", {}).get("dataset", ""))
    meta: dict[str, Any] = {
        "language": ["ko"],
        "license": _hub_licence(items),
        "pretty_name": _title(stats),
        "size_categories": [_size_category(int(stats.get("pairs", 0)))],
        "task_categories": ["question-answering", "text-generation"],
        "task_ids": ["multiple-choice-qa"],
        "annotations_creators": ["machine-generated"],
        "language_creators": ["machine-generated"],
        "multilinguality": ["monolingual"],
        "source_datasets": [KMMLU_HUB_ID if source == KMMLU_HUB_ID else "original"],
        "tags": ["finance", "korean", "multiple-choice", "synthetic", "kmmlu", "finmcq"],
    }
    if data_files:
        meta["configs"] = [
            {"config_name": name, **({"default": True} if i == 0 else {}),
             "data_files": [{"split": "train", "path": path}]}
            for i, (name, path) in enumerate(data_files.items())
        ]
    front = str(yaml.safe_dump(meta, allow_unicode=True, sort_keys=False))
    return "---\n" + front + "---\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "—"


def _what_it_is(run: Run) -> str:
    stats = run.stats
    q = stats["questions"]
    source = stats.get("source", {})
    origins = stats.get("origins", {})
    text = (
        "## What it is\n\n"
        f"{q['delivered']:,} Korean multiple-choice questions about financial markets, investing "
        "and trading, each with seven options (A–G), exactly one correct answer and a "
        f"step-by-step solution, delivered as {stats.get('pairs', 0):,} prompt/response pairs "
        "in the KRX-leaderboard layout: step 1 asks the question and answers with the solution; "
        "step 2 repeats the question and the solution and answers with the letter alone.\n\n"
        f"{origins.get('rewrite', 0):,} questions are rewrites of source questions from "
        f"`{source.get('dataset', '?')}` (subjects: {', '.join(source.get('subjects', []))}; "
        f"splits: {', '.join(source.get('splits', []))}); {origins.get('generate', 0):,} were "
        "generated to fill the per-topic quotas. Built by finmcq "
        f"{stats.get('finmcq_version', __version__)}, run `{run.timestamp}`.\n"
    )
    if stats.get("holdout"):
        held = stats["holdout"]
        text += (f"\n{held['questions']:,} of these questions are held out of the training file "
                 f"(`{held['file']}`, balanced over topics and letters) for evaluation; the "
                 f"training file holds the other {held['training_questions']:,}.\n")
    if source.get("warning"):
        text += f"\n> **Splits warning:** {source['warning']}\n"
    if _is_fake(stats):
        text += ("\n> **Demo data:** this build used finmcq's built-in *fake* LLM. It shows the "
                 "pipeline and the format; its questions are not real.\n")
    return text


def _how_built(stats: Mapping[str, Any]) -> str:
    models = _table(["stage", "model"], list(stats.get("models", {}).items()))
    stage_rows = [
        [name, s.get("in", 0), s.get("out", 0), s.get("dropped", 0),
         ", ".join(f"{r} × {n}" for r, n in s.get("drop_reasons", {}).items()) or "—"]
        for name, s in stats.get("stages", {}).items()
    ]
    q = stats["questions"]
    settings = stats.get("settings", {})
    cost = stats.get("cost_usd", {}).get("total")
    counts = _table(["count", "value"], [
        ["source questions", stats.get("sources", 0)],
        ["questions delivered", q["delivered"]],
        ["questions asked for", q["target"]],
        ["training pairs", stats.get("pairs", 0)],
        *([["questions held out (--holdout, not in the training file)",
            stats["holdout"]["questions"]]] if stats.get("holdout") else []),
        ["slot attempts", stats.get("slots", {}).get("attempts", "—")],
        ["seed", stats.get("seed")],
        ["reviewed / accepted / edited / replaced (finmcq review)",
         " / ".join(str((stats.get("review") or {}).get(k, 0))
                    for k in ("reviewed", "accepted", "edited", "replaced"))],
        ["LLM cost (USD, all sessions)", f"{cost:.4f}" if isinstance(cost, int | float) else "—"],
    ])
    return (
        "## How it was built\n\n"
        "finmcq streams every source question through these stages:\n\n"
        "1. **relevance** — an LLM judge keeps questions about financial markets, investing or "
        f"trading (score ≥ {settings.get('min_relevance_score', '?')} of 5) and assigns one of "
        "8 topics; topics are filled up to their quotas in source order.\n"
        "2. **rewrite** — each kept question becomes a 7-option financial-market question; the "
        "LLM writes the correct option and six distractors, finmcq places them so every letter "
        "A–G is the key equally often.\n"
        "3. **generate** — new questions fill the topic quotas, only as many as needed.\n"
        "4. **verify** — deterministic checks (7 distinct options, no position-dependent option "
        "such as \"all of the above\", no key leaked into the stem) and a blind solve that must "
        "find the key.\n"
        "5. **solve** — a step-by-step solution (analysis, every option reviewed, derivation, "
        "theory and practice) that must conclude with the key.\n"
        "6. **dedupe** — later exact duplicate stems are dropped and their slots refilled.\n\n"
        f"A slot gets up to {settings.get('max_attempts_per_question', '?')} attempts. Every "
        "random choice follows the seed; every LLM reply is cached, so a rerun reproduces the "
        "build.\n\n### Models\n\n" + models + "\n### Stages\n\n"
        + _table(["stage", "in", "out", "dropped", "drop reasons"], stage_rows)
        + "\n### Counts\n\n" + counts + "\n### Human review\n\n" + review_text(stats) + "\n"
    )


def _distributions(stats: Mapping[str, Any]) -> str:
    delivered = int(stats["questions"]["delivered"])
    topics = [[t, row.get("quota", 0), row.get("delivered", 0),
               _share(int(row.get("delivered", 0)), delivered)]
              for t, row in stats.get("topics", {}).items()]
    letters_stats = stats.get("letters", {})
    letters = [[ch, letters_stats.get(ch, 0), _share(int(letters_stats.get(ch, 0)), delivered)]
               for ch in LETTERS]
    difficulty = dict(stats.get("difficulty", {}))
    levels = [lv for lv in DIFFICULTY_ORDER if lv in difficulty]
    levels += sorted(set(difficulty) - set(levels))
    diff_rows = [[lv, difficulty[lv], _share(int(difficulty[lv]), delivered)] for lv in levels]
    ranks = stats.get("key_length_ranks", {}).get("counts", {})
    rank_rows = [[r, ranks.get(str(r), 0), _share(int(ranks.get(str(r), 0)), delivered)]
                 for r in range(1, len(LETTERS) + 1)]
    negative = stats.get("negative_stems", {})
    cues = ""
    if ranks:
        cues = (
            "\n## Answer cues\n\nWhere the key ranks by length among the seven options (1 = "
            "longest; equal lengths ordered by a seeded coin). With no length cue each rank "
            "holds 14.3%; finmcq asks the writer for a planned rank per question and balances "
            "the set.\n\n" + _table(["key length rank", "count", "share"], rank_rows)
            + f"\nNegative stems (\"옳지 않은 것은?\"): {negative.get('count', 0):,} "
            f"({_share(int(negative.get('count', 0)), delivered)}).\n")
    return (
        "## Topics\n\n" + _table(["topic", "quota", "delivered", "share"], topics)
        + "\n## Answer letters\n\n" + _table(["letter", "count", "share"], letters) + cues
        + "\n## Difficulty\n\n" + _table(["difficulty", "count", "share"], diff_rows)
    )


def _provenance(items: Sequence[Mapping[str, Any]]) -> str:
    return (
        "## Provenance fields\n\n"
        "Every question in the items export (`items.*`) carries:\n\n"
        "- `item_id` — slot and attempt (`s…` slots started from a source question, `g…` slots "
        "were generated); the pairs' `item_id` points here.\n"
        "- `origin` — `rewrite` or `generate`; `topic`, `difficulty`.\n"
        "- `provenance` (rewrites only): `dataset` (hub id, folder or file read), `subject`, "
        "`split`, `row_index` (0-based row within subject and split), `original_answer` "
        "(KMMLU's answer column, 1 = A) and `license`; `source_question` is the original stem.\n"
        "- `verification` — the blind solve's answer, whether it passed, and failed checks.\n"
        "- `tokens`, `cost_usd` — what the LLM calls for this question cost.\n"
        f"\n{sum(1 for i in items if i.get('provenance')):,} of {len(items):,} questions have "
        "a source provenance.\n"
    )


def _intended_use() -> str:
    return (
        "## Intended use\n\n"
        "Supervised fine-tuning and evaluation of Korean language models on financial-market "
        "reasoning in a 7-option multiple-choice format with worked solutions. Not for: "
        "investment, legal or regulatory advice; benchmarking a model on KMMLU after training "
        "on this data (the rewrites derive from KMMLU questions); any use the source licence "
        "does not allow. Questions and solutions were written by an LLM and checked "
        "automatically, not by people: expect some errors.\n"
    )
