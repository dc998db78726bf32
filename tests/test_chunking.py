"""Chunking in the model's tokens and the seeded split, on crafted paragraphs."""
import pytest

from omnilm.chunking import make_chunks, split_sentences, split_train_valid
from omnilm.pdf_text import Paragraph


@pytest.fixture(scope="module")
def count_tokens(demo_text_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(demo_text_model))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def para(text, page=1):
    return Paragraph(text, [(0, page)])


def sentences(n, tag):
    return " ".join(f"Sentence {i} of part {tag} states that the GRR keeps {i + 3} anchor groups." for i in range(n))


def test_sentences_split_at_stops_not_at_abbreviations_initials_or_decimals():
    text = "VELLUM reaches 71.3 exact match, e.g. on KelpQA. A. Rivera et al. wrote it. Does it hold? Yes [1]."
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "VELLUM reaches 71.3 exact match, e.g. on KelpQA.", "A. Rivera et al. wrote it.", "Does it hold?",
        "Yes [1]."]


def test_chunks_fit_the_budget_keep_every_sentence_and_overlap(count_tokens):
    paragraphs = [para("1 Introduction")] + [para(sentences(6, t), page) for t, page in zip("abcdef", (1, 1, 2, 2, 3, 3))]
    chunks = make_chunks(paragraphs, count_tokens, max_tokens=128, overlap=24)
    assert len(chunks) >= 5
    for c in chunks:
        assert c["tokens"] == count_tokens(c["text"]) <= 128
    joined = "\n".join(c["text"] for c in chunks)
    for p in paragraphs:
        for a, b in split_sentences(p.text):
            assert p.text[a:b] in joined
    for before, after in zip(chunks, chunks[1:]):
        first = split_sentences(after["text"])[0]
        assert after["text"][first[0]:first[1]] in before["text"]  # the overlap repeats whole sentences
    assert chunks[0]["text"].startswith("1 Introduction\n\nSentence 0 of part a")
    assert chunks[0]["pages"] == [1] and chunks[-1]["pages"] == [3]
    assert sorted({p for c in chunks for p in c["pages"]}) == [1, 2, 3]


def test_cuts_prefer_paragraph_ends_and_never_follow_a_heading(count_tokens):
    paragraphs = [para(sentences(5, "a")), para("2 Method"), para(sentences(5, "b")), para(sentences(5, "c"))]
    chunks = make_chunks(paragraphs, count_tokens, max_tokens=120, overlap=0)
    assert chunks[0]["text"].endswith("7 anchor groups.") and "2 Method" not in chunks[0]["text"]
    assert chunks[1]["text"].startswith("2 Method\n\nSentence 0 of part b")
    assert all(not c["text"].endswith("Method") for c in chunks)


def test_a_sentence_longer_than_a_chunk_is_cut_in_word_windows(count_tokens):
    long = " ".join(f"anchor{i}" for i in range(300)) + "."
    chunks = make_chunks([para(long)], count_tokens, max_tokens=64, overlap=8)
    assert len(chunks) > 3 and all(c["tokens"] <= 64 for c in chunks)
    assert " ".join(c["text"] for c in chunks).split()[-1] == "anchor299."


def test_bad_sizes_are_rejected(count_tokens):
    with pytest.raises(ValueError):
        make_chunks([para("text.")], count_tokens, max_tokens=64, overlap=40)


def test_split_is_seeded_disjoint_and_keeps_a_validation_chunk():
    train, valid = split_train_valid(5, 0.1, seed=0)
    assert len(valid) == 1 and sorted(train + valid) == list(range(5))
    assert split_train_valid(5, 0.1, seed=0) == (train, valid)
    assert len({tuple(split_train_valid(40, 0.1, seed=s)[1]) for s in range(5)}) > 1
    assert len(split_train_valid(40, 0.1, seed=0)[1]) == 4
    assert split_train_valid(2, 0.9, seed=0)[0]  # never everything in valid
    with pytest.raises(ValueError):
        split_train_valid(1)


def test_korean_sentences_split_at_stops_before_hangul_and_at_full_width_stops():
    from pathlib import Path

    text = (Path(__file__).parent / "fixtures" / "korean_paragraph.txt").read_text(encoding="utf-8")
    spans = [text[a:b].strip() for a, b in split_sentences(text)]
    assert len(spans) == 8
    assert spans[3] == "HANA는 KelpQA 벤치마크에서 71.3점의 정확 일치 점수를 기록했다。"  # 。 with no space after
    assert spans[4] == "기존 방법보다 검색 시간도 2.5배 짧아졌어요."
    assert spans[5] == "그렇다면 앵커 토큰을 더 늘리면 성능이 좋아질까?"


def test_mixed_english_korean_keeps_the_english_rules():
    text = "예: e.g. 인코더 is used. Fig. 3 기준이다. A. 김 et al. 제안했다. 좋다！다음 문장？ 끝. e.g. the end."
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "예: e.g. 인코더 is used.", "Fig. 3 기준이다.", "A. 김 et al. 제안했다.", "좋다！", "다음 문장？",
        "끝. e.g. the end."]
