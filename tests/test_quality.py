"""Quality checks, one by one: Korean-aware near duplicates, contamination, leak and shape,
difficulty, the judge's keep/repair rules, and the fake LLM's defect mode."""

from __future__ import annotations

import json
import random
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from finmcq import checks
from finmcq.fake import pools
from finmcq.fake.config import FakeConfig, config_from_args, parse_args
from finmcq.fake.defects import (
    DEFECT_KINDS,
    corrupt_draft,
    corrupt_solution,
    item_fingerprint,
    resolve_rates,
)
from finmcq.fake.replies import (
    build_judge,
    build_solve,
    context_for,
    generate_draft,
    statement_truth,
)
from finmcq.quality.contamination import (
    BenchmarkQuestion,
    ContaminationIndex,
    item_text,
    load_benchmarks,
)
from finmcq.quality.difficulty import (
    delivered_shares,
    difficulty_targets,
    final_difficulty,
    missing_difficulties,
)
from finmcq.quality.neardup import NearDuplicateFinder, lsh_rows, question_text
from finmcq.quality.summary import answer_length_cue, drops_by_check, negation
from finmcq.quality.text import fold_text, jaccard, shingles
from finmcq.records import LETTERS, Difficulty, DistractorAudit, McqItem, Topic
from finmcq.stages.judge import JudgeStage

from .conftest import SHARED_KMMLU

STEM = ("올해 상반기 들어 중형 자산운용사의 주식 운용역이 약 5359억 원 규모의 포트폴리오를 다시 "
        "점검하기 시작했다. 국고채 3년물 금리는 연 3.25% 안팎에서 움직이고 있다. 보유 채권 "
        "포트폴리오의 수정 듀레이션은 약 6.5년으로 추정된다. 이 상황에서 듀레이션과 금리 민감도에 "
        "관한 설명으로 가장 적절한 것은?")
OPTIONS = [
    "시장금리가 오르면 이미 발행된 고정금리 채권의 가격은 떨어진다",
    "만기가 길수록 채권 가격은 금리 변화에 덜 민감하다",
    "할인채의 듀레이션은 만기보다 언제나 길다",
    "신용등급이 낮을수록 신용스프레드는 좁아진다",
    "표면이자율이 높을수록 듀레이션은 길어진다",
    "볼록성은 금리가 변해도 채권 가격에 아무런 영향을 주지 않는다",
    "채권 가격이 액면가보다 높으면 만기수익률은 표면이자율보다 높다",
]


def ctx(n: int = 0) -> object:
    return context_for(f"{n:064x}", 0)


# --------------------------------------------------------------------------------------------
# Korean-aware folding and shingles
# --------------------------------------------------------------------------------------------


def test_fold_ignores_nfd_spacing_punctuation_and_width() -> None:
    nfc = "가격 우선 원칙이 먼저 적용된다."
    assert unicodedata.normalize("NFD", nfc) != nfc
    variants = [unicodedata.normalize("NFD", nfc), "가격우선원칙이 먼저 적용된다",
                "「가격 우선 원칙」이, 먼저  적용된다!", "가격\u00a0우선 원칙이\n먼저 적용된다…"]
    assert {fold_text(v) for v in variants} == {fold_text(nfc)} == {"가격우선원칙이먼저적용된다"}
    assert fold_text("ＥＴＦ 수익률 １２%") == fold_text("etf 수익률 12%")


def test_fold_keeps_what_changes_meaning_in_finance() -> None:
    assert fold_text("1.5%") != fold_text("15%")  # the decimal point stays
    assert fold_text("1,000원") == fold_text("1000원")  # a thousands separator does not
    assert fold_text("+2%") != fold_text("-2%") and fold_text("−2%") == fold_text("-2%")


def test_shingles_are_character_ngrams_of_hangul() -> None:
    assert shingles("채권 가격", 3) == {"채권가", "권가격"}
    assert shingles("금리", 4) == {"금리"}  # shorter than n: the whole folded text
    assert shingles("  ", 4) == frozenset()
    # A word tokenizer that drops Hangul would see nothing here; shingles see everything.
    assert jaccard(shingles(STEM), shingles(STEM.replace(" ", ""))) == 1.0


# --------------------------------------------------------------------------------------------
# Near duplicates
# --------------------------------------------------------------------------------------------


def _stems(n: int, seed: int = 3) -> list[str]:
    """Distinct generated stems from the fake (same topic, so they share vocabulary)."""
    out = []
    for slot in range(n):
        draft = generate_draft(Topic.BONDS, "듀레이션", Difficulty.MEDIUM, slot, 0,
                               context_for(f"{slot + seed:064x}", seed))
        out.append(draft["question"])
    return out


def test_variants_of_a_korean_stem_are_duplicates_and_the_first_survives() -> None:
    finder = NearDuplicateFinder(threshold=0.6)
    stems = _stems(30)
    texts = [*stems,
             unicodedata.normalize("NFD", stems[4]),  # NFD: exact after folding
             stems[7].replace(" ", "  ").replace(".", ","),  # spacing and punctuation
             stems[9].replace(". ", ". 한편 ", 1),  # a word added
             stems[12].replace("적절한", "알맞은")]  # a word changed
    found = {d.index: d for d in finder.find(texts)}
    assert set(found) == {30, 31, 32, 33}
    assert found[30].exact and found[30].of == 4 and found[30].reason == "duplicate_question"
    assert found[31].exact and found[31].of == 7
    assert not found[32].exact and found[32].of == 9
    assert found[32].reason == "near_duplicate_question" and found[32].similarity >= 0.6
    assert found[33].of == 12


def test_distinct_questions_are_not_duplicates() -> None:
    assert NearDuplicateFinder(threshold=0.6).find(_stems(200)) == []


def test_duplicate_detection_depends_on_order_only() -> None:
    stems = _stems(20)
    copy = stems[5].replace(". ", ". 한편 ", 1)
    forward = NearDuplicateFinder().find([*stems, copy])
    assert [(d.index, d.of) for d in forward] == [(20, 5)]
    backward = NearDuplicateFinder().find([copy, *stems])
    assert [(d.index, d.of) for d in backward] == [(6, 0)]  # now the original is the later one


def test_a_chain_keeps_the_first_and_compares_with_kept_items_only() -> None:
    a = STEM
    b = STEM.replace("가장 적절한 것은?", "가장 적절한 설명은?")
    c = b.replace("올해 상반기 들어", "지난 분기 말을 전후해")
    found = NearDuplicateFinder(threshold=0.6).find([a, b, c])
    assert [d.index for d in found] == [1, 2]
    assert all(d.of == 0 for d in found)  # c is compared with a (kept), not b (dropped)


def test_lsh_finds_nearly_all_pairs_at_the_threshold() -> None:
    rng = random.Random(5)
    stems = _stems(60)
    copies = []
    for stem in stems:
        chars = list(stem)
        for _ in range(len(chars) // 25):  # ~4 % of characters changed
            chars[rng.randrange(len(chars))] = rng.choice("가나다라마바사")
        copies.append("".join(chars))
    found = NearDuplicateFinder(threshold=0.6).find(stems + copies)
    assert len(found) >= 58
    assert lsh_rows(0.6) == 4 and lsh_rows(0.9) > lsh_rows(0.5)


def test_short_generic_stems_are_compared_with_their_options() -> None:
    assert question_text(STEM, OPTIONS) == STEM
    short = question_text("다음 중 옳은 것은?", OPTIONS)
    assert OPTIONS[0] in short
    other = question_text("다음 중 옳은 것은?", ["전혀 다른 선택지 하나", "둘", "셋"])
    assert NearDuplicateFinder().find([short, other]) == []


# --------------------------------------------------------------------------------------------
# Contamination
# --------------------------------------------------------------------------------------------


def bench(name: str, ref: str, question: str, options: list[str]) -> BenchmarkQuestion:
    return BenchmarkQuestion(name, ref, item_text(question, options), question)


BENCH = [
    bench("KMMLU/Economics/test", "Economics/test/0",
          "다른 조건이 일정할 때 중앙은행이 기준금리를 인상하면 단기적으로 나타날 가능성이 "
          "가장 큰 것은?",
          ["채권 가격 하락", "통화량 증가", "원화 약세", "주가 상승"]),
    bench("KRX-sample", "krx/3",
          "상장지수펀드의 시장가격과 순자산가치 사이의 괴리율이 확대되는 주된 원인으로 "
          "가장 적절한 것은?",
          ["유동성공급자의 호가 공백", "기초지수 구성 종목 변경", "분배금 지급", "총보수 인하"]),
    bench("KRX-sample", "krx/4", "옳은 것은?", ["가", "나", "다", "라"]),
]


def test_a_copied_benchmark_question_is_flagged_with_its_benchmark() -> None:
    index = ContaminationIndex(threshold=0.5)
    assert index.add(BENCH) == 2  # the generic one-liner is too short to compare
    copied = item_text(
        "최근 몇 주 사이 한 증권사의 채권 매니저가 포트폴리오를 점검하고 있다. "
        "다른 조건이 일정할 때 중앙은행이 기준금리를 인상하면 단기적으로 나타날 가능성이 "
        "가장 큰 것은?",
        ["채권 가격 하락", "통화량 증가", "원화 약세", "주가 상승", "예금 금리 하락",
         "환율 급락", "물가 급등"])
    hit = index.check(copied)
    assert hit is not None and hit.benchmark == "KMMLU/Economics/test"
    assert hit.ref == "Economics/test/0" and hit.overlap >= 0.9
    assert index.check(item_text(STEM, OPTIONS)) is None
    # The stem alone, with other spacing and punctuation, inside another question: still a copy.
    spaced = item_text("시장 조성 실무 교육 중이다. 상장지수펀드의 시장가격과 순자산가치 사이의 "
                       "괴리율이  확대되는 주된 원인으로, 가장 적절한 것은", OPTIONS)
    hit = index.check(spaced)
    assert hit is not None and hit.ref == "krx/3"


def test_extra_benchmark_files_in_any_common_shape(tmp_path: Path) -> None:
    jsonl = tmp_path / "krx.jsonl"
    jsonl.write_text("\n".join(json.dumps({"prompt": q}, ensure_ascii=False) for q in (
        "선물환 매도로 수출 대금의 환율 변동 위험을 줄이는 거래 방식으로 가장 적절한 것은?",
        "콜옵션 매수자의 최대 손실은 얼마로 한정되는가에 대한 설명으로 옳은 것은?")), "utf-8")
    text = tmp_path / "krx.txt"
    text.write_text("서킷브레이커가 발동되면 시장 전체의 매매거래가 일정 시간 중단되는 이유는?\n",
                    "utf-8")
    index = load_benchmarks("sample", [jsonl, text])
    assert [c["benchmark"] for c in index.compared_against] == ["krx.jsonl", "krx.txt"]
    assert index.describe()["questions"] == 3
    assert "no KMMLU test split" in index.notes[0]
    assert index.expected_notes == index.notes  # expected for the sample: logged at INFO
    hit = index.check("수출기업은 선물환 매도로 수출 대금의 환율 변동 위험을 줄이는 거래 방식으로 "
                      "가장 적절한 것은?")
    assert hit is not None and hit.benchmark == "krx.jsonl"


def _lookups(index: ContaminationIndex) -> list[object]:
    texts = [b.text for b in BENCH] + [b.stem for b in BENCH] + [item_text(STEM, OPTIONS)]
    return [index.check(t) for t in texts]


def test_benchmark_hashes_are_cached_by_content(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMCQ_CACHE_DIR", str(tmp_path))
    cold = ContaminationIndex(threshold=0.5)
    assert cold.add(BENCH) == 2
    entries = list((tmp_path / "contamination").glob("*.npz"))
    assert len(entries) == 1
    import finmcq.quality.contamination as contamination

    def no_hashing(*_args: object) -> None:
        raise AssertionError("a cached batch was hashed again")

    with monkeypatch.context() as patched:
        patched.setattr(contamination, "_hash_batch", no_hashing)
        warm = ContaminationIndex(threshold=0.5)
        assert warm.add(BENCH) == 2
    assert _lookups(warm) == _lookups(cold) and any(_lookups(cold))
    # The entry is what the warm index read: damaging it makes the next index hash afresh
    # (same answers) and rewrite it.
    entries[0].write_bytes(b"not an npz file")
    again = ContaminationIndex(threshold=0.5)
    assert again.add(BENCH) == 2 and _lookups(again) == _lookups(cold)
    assert entries[0].read_bytes()[:2] == b"PK"
    # A changed question is a new key: its own entry, and the change is seen.
    changed = [*BENCH[:-1], bench("KRX-sample", "krx/4", "선물과 옵션의 손익 구조 차이에 대해 "
                                   "가장 적절한 설명은?", ["가", "나", "다", "라"])]
    other = ContaminationIndex(threshold=0.5)
    assert other.add(changed) == 3
    assert len(list((tmp_path / "contamination").glob("*.npz"))) == 2
    # With the cache off nothing is written and the index still works.
    monkeypatch.setenv("FINMCQ_CACHE_DIR", "off")
    off = ContaminationIndex(threshold=0.5)
    assert off.add(BENCH) == 2 and _lookups(off) == _lookups(cold)


@pytest.mark.skipif(not SHARED_KMMLU.is_dir(), reason="../shared/kmmlu not present")
def test_kmmlu_test_splits_of_finance_subjects_are_loaded_from_the_source() -> None:
    from finmcq.sources import load_source

    index = load_benchmarks(str(SHARED_KMMLU), [])
    names = {c["benchmark"] for c in index.compared_against}
    assert {"KMMLU/Economics/test", "KMMLU/Management/test", "KMMLU/Accounting/test",
            "KMMLU/Taxation/test", "KMMLU/Marketing/test", "KMMLU/Real-Estate/test"} == names
    question = load_source(str(SHARED_KMMLU), ["Taxation"], ["test"])[17]
    hit = index.check(item_text("2024년 기준 한 세무법인이 고객 자료를 검토하고 있다. "
                                + question.question, list(question.options)))
    assert hit is not None and hit.benchmark == "KMMLU/Taxation/test"


# --------------------------------------------------------------------------------------------
# Leak and shape checks
# --------------------------------------------------------------------------------------------


def test_options_identical_up_to_punctuation_or_spacing_are_duplicates() -> None:
    assert checks.option_problems([*OPTIONS[:6], OPTIONS[0] + "."]) == "duplicate_option"
    assert checks.option_problems([*OPTIONS[:6], OPTIONS[0].replace(" ", "", 1)]) == (
        "duplicate_option")
    assert checks.option_problems([*OPTIONS[:6], unicodedata.normalize("NFD", OPTIONS[0])]) == (
        "duplicate_option")
    assert checks.option_problems(["1.5%", "15%", "2.5%", "25%", "3%", "30%", "0.5%"]) is None


def test_key_leaked_with_other_spacing_is_caught() -> None:
    key = "시장금리가 오르면 채권 가격은 떨어진다"
    stem = "한 운용역은 '시장금리가 오르면 채권가격은 떨어진다'고 보았다. 옳은 것은?"
    assert checks.stem_problems(stem, key) == "answer_leaked_in_stem"
    assert checks.stem_problems("채권 가격과 시장금리의 관계로 옳은 것은?", key) is None


def test_answer_length_cue() -> None:
    options = ["짧은 오답", "조금 더 긴 오답 하나", "오답 셋", "오답 넷", "오답 다섯", "오답 여섯",
               "정답은 가장 긴 선택지로 쓰였다"]
    assert checks.key_is_longest(options, "G")
    assert not checks.key_is_longest(options, "B")
    assert checks.answer_length_cue(options, "G", allow_longest=False) == "key_longest_option"
    assert checks.answer_length_cue(options, "G", allow_longest=True) is None
    much = [*options[:6], "정답만 유독 길고 구체적이어서 읽기만 해도 답이라는 것을 알 수 있다"]
    assert checks.answer_length_cue(much, "G", allow_longest=True) == "key_much_longer"
    tie = ["10%", "20%", "30%", "40%", "50%", "60%", "70%"]
    assert not checks.key_is_longest(tie, "A")  # equal lengths give no cue


def test_negation_stems_are_recognised_by_their_question_sentence() -> None:
    assert checks.is_negative_stem("A사가 검토 중이다. 다음 중 옳지 않은 것은?")
    assert checks.is_negative_stem("설명으로 가장 거리가 먼 것은?")
    assert not checks.is_negative_stem("틀린 예측이 이어졌다. 다음 중 옳은 것은?")


def test_option_reviews_that_do_not_review_are_caught() -> None:
    good = [f"{c} 선택지는 듀레이션의 방향을 거꾸로 적용해 틀리다" for c in "ABCDEFG"]
    assert checks.review_problems(good) is None
    for bad in ("생략한다.", "위와 같다.", "앞 선택지와 같은 이유로 틀리다.", "틀리다."):
        assert checks.review_problems([*good[:6], bad]) == "solution_skips_options"
    assert checks.review_problems([*good[:6], good[0]]) == "solution_skips_options"
    long_ref = "B와 마찬가지로 듀레이션을 반대로 적용했고 볼록성 효과도 무시한 설명이다"
    assert checks.review_problems([*good[:6], long_ref]) is None


def test_quality_summaries() -> None:
    longer = (*OPTIONS[:5], OPTIONS[5] + " (장기적으로)", OPTIONS[6])  # F is the longest
    items = [McqItem(item_id=f"x{i}", question=STEM if i % 4 else "옳지 않은 것은?",
                     options=longer, answer="F" if i < 2 else "A",  # type: ignore[arg-type]
                     topic=Topic.BONDS, origin="generate") for i in range(10)]
    cue = answer_length_cue(items, 0.3)
    assert cue["key_is_longest"] == 2 and cue["share"] == 0.2 and cue["within_cap"]
    neg = negation(items, (0.1, 0.5))
    assert neg["count"] == 3 and neg["in_range"]
    stages = {"shape": {"drop_reasons": {"answer_leaked_in_stem": 4}, "retried": {}},
              "judge": {"drop_reasons": {"distractor_defensible": 2}, "retried": {"repaired": 5}}}
    by_check = drops_by_check(stages)
    assert by_check["answer_leak"]["dropped"] == 4
    assert by_check["second_answer_judge"] == {"dropped": 2, "rejected_replies": 0, "repaired": 5}


# --------------------------------------------------------------------------------------------
# Difficulty
# --------------------------------------------------------------------------------------------


def test_final_difficulty_combines_generator_and_solver() -> None:
    E, M, H = Difficulty.EASY, Difficulty.MEDIUM, Difficulty.HARD
    assert final_difficulty(H, [M]) is H
    assert final_difficulty(E, [H]) is M  # two levels apart: the middle
    assert final_difficulty(E, [H, E, E]) is E  # the median solver view
    assert final_difficulty(None, [H]) is H


def test_difficulty_plan_meets_the_mix_exactly() -> None:
    assert difficulty_targets(1000, (30, 50, 20)) == {
        Difficulty.EASY: 300, Difficulty.MEDIUM: 500, Difficulty.HARD: 200}
    assert sum(difficulty_targets(7, (1, 1, 1)).values()) == 7
    used = Counter({Difficulty.EASY: 12, Difficulty.HARD: 9})
    missing = missing_difficulties(100, (30, 50, 20), used)
    assert Counter(missing) == {Difficulty.EASY: 18, Difficulty.MEDIUM: 50, Difficulty.HARD: 11}
    shares = delivered_shares([Difficulty.EASY] * 33 + [Difficulty.MEDIUM] * 47
                              + [Difficulty.HARD] * 20, (30, 50, 20))
    assert shares["within_5_points"] and shares["max_abs_error"] == 0.03


# --------------------------------------------------------------------------------------------
# The judge's rules (no LLM)
# --------------------------------------------------------------------------------------------


def _item(answer: str = "A") -> McqItem:
    return McqItem(item_id="g0000001.0", question=STEM, options=tuple(OPTIONS),  # type: ignore[arg-type]
                   answer=answer, topic=Topic.BONDS, origin="generate")  # type: ignore[arg-type]


def _audit(item: McqItem, defensible: str = "", replacement: str | None = None,
           skip: str = "") -> DistractorAudit:
    return DistractorAudit.model_validate({
        "key_correct": True, "key_reason": "옳다", "time_sensitive": False,
        "distractor_reviews": [
            {"letter": c, "why_wrong": "틀린 이유", "defensible": c == defensible,
             "replacement": replacement if c == defensible else None}
            for c in LETTERS if c != item.answer and c != skip]})


def test_judge_keeps_only_a_full_confirmed_audit() -> None:
    item = _item()
    assert JudgeStage.keep(item, _audit(item)) is None
    assert JudgeStage.keep(item, _audit(item, skip="C")).reason == "judge_incomplete_review"
    assert JudgeStage.keep(item, _audit(item, defensible="D")).reason == "distractor_defensible"
    wrong = _audit(item).model_copy(update={"key_correct": False})
    assert JudgeStage.keep(item, wrong).reason == "judge_key_incorrect"


def test_judge_repair_replaces_the_defensible_distractor_in_place() -> None:
    item = _item()
    replacement = "시장금리와 채권 가격은 항상 같은 방향으로 움직인다"
    fixed = JudgeStage.repair(item, _audit(item, "D", replacement))
    assert fixed is not None and fixed.answer == "A"
    assert fixed.options[3].startswith("시장금리와") and fixed.options[:3] == item.options[:3]
    assert JudgeStage.repair(item, _audit(item, "D", None)) is None
    assert JudgeStage.repair(item, _audit(item, "D", OPTIONS[1])) is None  # would duplicate B


# --------------------------------------------------------------------------------------------
# The hostile fake: defect mode
# --------------------------------------------------------------------------------------------


def test_defect_rates_split_evenly_and_validate() -> None:
    rates = resolve_rates(0.18, {"wrong_key": 0.1})
    assert rates["wrong_key"] == 0.1 and rates["also_correct"] == pytest.approx(0.02)
    assert set(rates) == set(DEFECT_KINDS) and len(DEFECT_KINDS) == 9
    with pytest.raises(ValueError, match="unknown defect"):
        resolve_rates(0.1, {"typo": 0.1})
    with pytest.raises(ValueError):
        FakeConfig(defect_rates={"wrong_key": 0.7, "key_leak": 0.7})
    args = parse_args(["--defects", "0.15", "--defect", "also_correct=0.05"])
    config = config_from_args(args)
    assert config.defect_table()["also_correct"] == 0.05 and config.defects_on


def _draft(slot: int) -> dict[str, object]:
    return generate_draft(Topic.BONDS, "듀레이션", Difficulty.MEDIUM, slot, 0, ctx(slot))  # type: ignore[arg-type]


def test_each_draft_defect_is_what_its_check_catches() -> None:
    rates = {kind: 0.0 for kind in DEFECT_KINDS}
    item = {"task": "rewrite", "topic": "채권 시장"}
    seen = set()
    for slot in range(40):
        draft = _draft(slot)
        for kind in ("also_correct", "wrong_key", "key_leak", "duplicate_options",
                     "positional_option"):
            bad, record = corrupt_draft("rewrite", item, draft, ctx(slot),  # type: ignore[arg-type]
                                        {**rates, kind: 1.0})
            if record is None:
                continue
            seen.add(kind)
            assert record.kind == kind and record.fingerprint == item_fingerprint(
                bad["question"], bad["correct_option"], bad["distractors"])
            options = [bad["correct_option"], *bad["distractors"]]
            problem = checks.shape_problems(bad["question"], options, "A",
                                            allow_key_longest=False)
            expected = {"key_leak": "answer_leaked_in_stem",
                        "duplicate_options": "duplicate_option",
                        "positional_option": "position_dependent_option"}.get(kind)
            assert problem == expected, (kind, problem)
            if kind == "also_correct":  # the fake's judge notices; its blind solve would not
                audit = build_judge({"question": bad["question"], "answer": "A",
                                     "options": dict(zip(LETTERS, options, strict=True))},
                                    ctx(slot))  # type: ignore[arg-type]
                assert [r["defensible"] for r in audit["distractor_reviews"]].count(True) == 1
    assert seen == {"also_correct", "wrong_key", "key_leak", "duplicate_options",
                    "positional_option"}


def test_the_fake_judge_passes_its_own_clean_questions() -> None:
    for slot in range(60):
        draft = _draft(slot)
        options = [draft["correct_option"], *draft["distractors"]]  # type: ignore[list-item]
        audit = build_judge({"question": draft["question"], "answer": "A",
                             "options": dict(zip(LETTERS, options, strict=True))}, ctx(slot))  # type: ignore[arg-type]
        assert audit["key_correct"] and not any(r["defensible"]
                                                for r in audit["distractor_reviews"])
    assert statement_truth(pools.TOPIC_POOLS[Topic.BONDS].true[0] + " (원칙적으로)") is True


def test_solution_defects_fail_the_solution_checks() -> None:
    rates = {kind: 0.0 for kind in DEFECT_KINDS}
    options = dict(zip(LETTERS, OPTIONS, strict=True))
    clean = build_solve({"question": STEM, "options": options, "answer": "A"}, ctx())  # type: ignore[arg-type]
    for kind, reason in (("solution_wrong_letter", "solution_wrong_letter"),
                         ("solution_skips_options", "solution_skips_options")):
        bad, record = corrupt_solution(clean, ctx(), {**rates, kind: 1.0})  # type: ignore[arg-type]
        assert record is not None and record.kind == kind
        reviews = [r["review"] for r in bad["option_reviews"]]
        problem = (checks.solution_problems(bad["final_answer"], "A", reviews)
                   or checks.review_problems(reviews))
        assert problem == reason
