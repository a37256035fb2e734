"""The OpenAI-compatible endpoint through the official `openai` SDK, against a real
`cx-assistant serve` over HTTP: models, plain and streamed answers, follow-ups, abstention,
refused parameters, bad keys, an oversized question and an unknown model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from helpers.files import write_md
from helpers.processes import Served, cli_ingest, serve

KEY = "openai-compat-key"
MODEL = "cx-knowledge"
QUESTION = "How do we define a Cx Quality Fault?"
OFF_TOPIC = "Who won the 1998 World Cup final?"
FAULTS = ("A Cx Quality Fault is a moment where the customer receives less than the "
          "organisation promised them.")
OWNER = "The service design lead owns the fault register and reviews it every month."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    kb = tmp_path_factory.mktemp("openai-kb")
    data = tmp_path_factory.mktemp("openai-data")
    write_md(kb / "articles" / "faults.md", "Defining Cx Quality Faults",
             f"# The definition\n\n{FAULTS} Faults are counted per thousand journeys.\n\n"
             f"# Ownership\n\n{OWNER}", doc_type="article")
    write_md(kb / "findings" / "acme.md", "Acme churn findings",
             "# What we found\n\nAcme's monthly churn fell from 2.1% to 1.6% after the "
             "billing fix shipped in March 2024.", doc_type="finding", client="Acme")
    write_md(kb / "playbooks" / "triage.md", "Complaint triage",
             "# Triage\n\nEvery complaint is triaged within four working hours by the "
             "duty analyst.", doc_type="playbook")
    cli_ingest(kb, data)
    with serve(data, CX_API_KEYS=KEY, CX_MAX_QUESTION_CHARS="300") as served:
        yield served


@pytest.fixture(scope="module")
def client(server: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def ask(client: openai.OpenAI, question: str = QUESTION, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model=kwargs.pop("model", MODEL),
        messages=kwargs.pop("messages", [{"role": "user", "content": question}]), **kwargs)


def test_models_are_collections_and_doc_types(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == {MODEL, f"{MODEL}:article", f"{MODEL}:finding", f"{MODEL}:playbook"}


def test_plain_answer_cites_verbatim_quotes(client: openai.OpenAI) -> None:
    completion = ask(client, temperature=0.3, max_tokens=200, user="tester", seed=1)
    content = completion.choices[0].message.content
    cx = completion.model_extra["cx"]  # the SDK keeps unknown fields in model_extra
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.choices[0].finish_reason == "stop"
    assert not cx["abstained"] and cx["mode"] == "extractive" and cx["citations"]
    first = cx["citations"][0]
    assert first["doc_id"] == "articles/faults.md" and first["quote"] in FAULTS + OWNER
    answer, sources = content.split("\n\nSources:\n")
    assert answer == cx["answer"] and "[1]" in answer
    assert '[1] Defining Cx Quality Faults (articles/faults.md' in sources
    assert f'"{first["quote"]}"' in sources
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


def test_streamed_answer_matches_the_plain_one(client: openai.OpenAI) -> None:
    plain = ask(client).choices[0].message.content
    stream = ask(client, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert " ".join(text.split()) == " ".join(plain.split())
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(final) == 1 and final[0].model_extra["cx"]["citations"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_stream_ends_with_done(server: Served) -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_follow_up_uses_the_history(client: openai.OpenAI) -> None:
    first = ask(client).choices[0].message.content
    completion = ask(client, messages=[
        {"role": "system", "content": "You are terse."},  # ignored: the instructions are ours
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Who owns the register of them?"},
    ])
    cx = completion.model_extra["cx"]
    assert "fault" in (cx.get("query") or "").lower()  # the follow-up was rewritten
    assert any("service design lead" in c["quote"] for c in cx["citations"])


def test_abstention_has_no_sources(client: openai.OpenAI) -> None:
    completion = ask(client, OFF_TOPIC)
    cx = completion.model_extra["cx"]
    assert cx["abstained"] and cx["citations"] == []
    assert "Sources:" not in completion.choices[0].message.content


def test_doc_type_model_answers_from_that_type_only(client: openai.OpenAI) -> None:
    completion = ask(client, "How fast is a complaint triaged?", model=f"{MODEL}:finding")
    cited = {c["doc_id"] for c in completion.model_extra["cx"]["citations"]}
    assert cited <= {"findings/acme.md"}
    completion = ask(client, "How fast is a complaint triaged?", model=f"{MODEL}:playbook")
    assert {c["doc_id"] for c in completion.model_extra["cx"]["citations"]} == {
        "playbooks/triage.md"}


def test_bad_key_raises_the_sdks_401(server: Served) -> None:
    for key in ("wrong-key", ""):
        bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            ask(bad)
        assert refused.value.status_code == 401
        assert refused.value.body["code"] == "invalid_api_key"
        assert "API key" in refused.value.body["message"]


def test_unknown_model_is_a_404_in_openai_shape(client: openai.OpenAI) -> None:
    for model in ("gpt-4o", f"{MODEL}:memo"):
        with pytest.raises(openai.NotFoundError) as missing:
            ask(client, model=model)
        assert missing.value.body["code"] == "model_not_found"
        assert missing.value.body["param"] == "model" and "/v1/models" in missing.value.message


def test_oversized_question_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, "why " * 100)
    body = refused.value.body
    assert body["param"] == "messages" and "CX_MAX_QUESTION_CHARS" in body["message"]
    assert body["type"] == "invalid_request_error"


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": QUESTION},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
     "messages[0].content"),
    ({"messages": [{"role": "user", "content": QUESTION},
                   {"role": "assistant", "content": "Hm."}]}, "messages"),
    ({"temperature": 7}, "temperature"),
])
def test_unsupported_parameters_are_400s_naming_the_param(
        client: openai.OpenAI, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, **kwargs)
    body = refused.value.body
    assert body["param"] == param and body["type"] == "invalid_request_error", body
    assert body["message"]


def test_openapi_documents_the_extra_field(server: Served) -> None:
    spec = httpx.get(f"{server.url}/openapi.json",
                     headers={"Authorization": f"Bearer {KEY}"}).json()
    completion = spec["components"]["schemas"]["ChatCompletion"]
    assert "model_extra" in completion["properties"]["cx"]["description"]
    assert "/v1/chat/completions" in spec["paths"] and "/v1/models" in spec["paths"]


def test_readme_documents_the_endpoint() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "/v1/chat/completions" in readme and 'model_extra["cx"]' in readme
