"""Rule-based mining on crafted sentences, and the question variants."""
from omnilm.qa_mining import (context_name, context_variants, expand_acronym, find_acronyms, mine_chunk,
                              plain_variant)


def mine(text):
    chunk = {"id": 7, "text": text, "pages": [2]}
    return mine_chunk(chunk, find_acronyms(text))


def asked(pairs):
    return {p["question"]: p["answer"] for p in pairs}


def test_acronym_expansion_checks_initials():
    assert expand_acronym("we use Salient Compressor Pretraining".split(), "SCP") == "Salient Compressor Pretraining"
    assert expand_acronym("the Vector-Encoded Latent Lookup with Unified Memory".split(), "VELLUM") == \
        "Vector-Encoded Latent Lookup with Unified Memory"  # hyphen parts count, small words are skipped
    assert expand_acronym("the Vector Latent Lookup".split(), "VELLUM") is None
    assert expand_acronym("a Latent Lookup with Unified Memory".split(), "LLUM") == "Latent Lookup with Unified Memory"
    assert expand_acronym("we train it with care".split(), "SCP") is None


def test_acronym_pairs_are_tagged():
    pairs = mine("We train with Salient Compressor Pretraining (SCP) on every passage.")
    qa = asked(pairs)
    assert qa["What does SCP stand for?"] == "SCP stands for Salient Compressor Pretraining."
    # the expansion is asked in several wordings, one answer
    assert qa["What is SCP short for?"] == qa["What is the long form of SCP?"] == qa["What does SCP stand for?"]
    assert qa["What is the acronym of Salient Compressor Pretraining?"] == \
        "The acronym of Salient Compressor Pretraining is SCP."
    assert all(p["source"] == "rule" and p["rule"] == "acronym" and p["pages"] == [2] and p["chunk_id"] == 7
               for p in pairs)


def test_mismatched_parenthesis_is_not_an_acronym():
    assert mine("The results improve (see Table) on every run.") == []
    assert find_acronyms("We measure Exact Match (EX) here.") == {}


def test_stands_for():
    qa = asked(mine("We present CLaRa, which stands for Continuous Latent Reasoning."))
    assert qa["What does CLaRa stand for?"] == "CLaRa stands for Continuous Latent Reasoning."
    assert qa["What is CLaRa short for?"] == qa["What does CLaRa stand for?"]


def test_is_definition_asks_by_name_and_acronym():
    qa = asked(mine("Salient Compressor Pretraining (SCP) is the objective that trains the compressor."))
    answer = "Salient Compressor Pretraining (SCP) is the objective that trains the compressor."
    assert qa["What is Salient Compressor Pretraining?"] == answer
    assert qa["What is SCP?"] == answer


def test_appositive_definition_keeps_numbers_whole():
    qa = asked(mine("Fourth, KelpQA, a benchmark of 12,400 questions about field reports, which we release."))
    assert qa["What is KelpQA?"] == "KelpQA is a benchmark of 12,400 questions about field reports."


def test_what_does_it_do_from_a_which_clause_and_a_verb():
    text = ("Second, the Gated Relevance Router (GRR), which selects 4 anchor groups for each question. "
            "A Gated Relevance Router (GRR) then keeps only the 4 most relevant groups.")
    answers = {p["answer"] for p in mine(text) if p["question"] in ("What does GRR do?",
                                                                     "What does the Gated Relevance Router do?")}
    assert answers == {"The Gated Relevance Router (GRR) selects 4 anchor groups for each question.",
                       "The Gated Relevance Router (GRR) keeps only the 4 most relevant groups."}


def test_plain_sentences_about_unnamed_things_give_nothing():
    assert mine("The compressor is a small encoder. It has three phases. We thank the reviewers.") == []


def test_context_name_from_title_or_frequency():
    assert context_name([{"text": "VELLUM: Compressing Passages\n\nBody."}]) == "VELLUM"
    assert context_name([{"text": "A study of CLARA and GRR. CLARA is fast. CLARA wins."}]) == "CLARA"


def test_context_variants_name_the_document_two_ways():
    pair = {"question": "What is SCP?", "answer": "SCP is an objective.", "concept": "SCP", "source": "rule"}
    assert [v["question"] for v in context_variants(pair, "CLaRa")] == ["What is SCP in CLaRa?",
                                                                        "In the CLaRa paper, what is SCP?"]
    assert context_variants(dict(pair, question="What does CLaRa stand for?", concept="CLaRa"), "CLaRa") == []


def test_plain_variant_drops_the_document_name():
    pair = {"question": "What is SCP in the CLaRa paper?", "answer": "SCP is an objective."}
    assert plain_variant(pair, "CLaRa")["question"] == "What is SCP?"
    assert plain_variant({"question": "What is SCP?"}, "CLaRa") is None
