"""Ask any OpenAI-compatible server (vLLM, SGLang, TensorRT-LLM) for the canary's completions.

Every request is greedy (``temperature: 0``) with ``logprobs: 1``, and asks for the prompt's own
log-probabilities (``prompt_logprobs``) and token ids (``return_token_ids``): vLLM extensions the
OpenAI API lets other servers ignore. A broken export shows up here as an HTTP 400 (vLLM cannot
serialise a NaN logprob) or as JSON the strict parser rejects; both become ``Completion.error``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ptq_validators.canary.completion import Completion
from ptq_validators.canary.prompts import MAX_TOKENS, Prompt
from ptq_validators.errors import InputError

TIMEOUT_S = 120.0


def get_json(url: str, timeout: float = 10.0) -> Any:
    """GET ``url`` and parse its JSON body (raises OSError / ValueError)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def served_model(base_url: str) -> tuple[str, str | None, str | None]:
    """The first model the server lists, the engine that owns it and the version the server
    reports (None where it does not say)."""
    try:
        models = get_json(f"{base_url}/v1/models")
        name = str(models["data"][0]["id"])
        owner = models["data"][0].get("owned_by")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(
            f"{base_url}/v1/models: no model listed ({exc})",
            hint="pass the server's base URL, e.g. http://127.0.0.1:8000",
        ) from None
    try:
        version = str(get_json(f"{base_url}/version")["version"])
    except (OSError, ValueError, KeyError, TypeError):
        version = None
    return name, (str(owner) if owner else None), version


def complete(base_url: str, model: str, prompt: Prompt) -> Completion:
    """One greedy completion with log-probabilities; request failures land in ``error``."""
    body = {
        "model": model,
        "prompt": prompt.text,
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "logprobs": 1,
        "prompt_logprobs": 1,
        "return_token_ids": True,
    }
    request = urllib.request.Request(
        f"{base_url}/v1/completions",
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            raw = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        return Completion(prompt.id, error=f"HTTP {exc.code}: {_error_message(detail)}")
    except OSError as exc:
        return Completion(prompt.id, error=f"request failed: {exc}")
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
        return _parse(prompt.id, document["choices"][0])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return Completion(prompt.id, error=f"invalid response JSON: {exc}")


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-JSON constant {name}")


def _error_message(detail: str) -> str:
    try:
        error = json.loads(detail).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or detail)[:300]
    except (ValueError, AttributeError):
        return detail[:300]


def _parse(prompt_id: str, choice: dict[str, Any]) -> Completion:
    logprobs = choice.get("logprobs") or {}
    prompt_ids = [int(t) for t in choice.get("prompt_token_ids") or []]
    prompt_logprobs: list[float | None] = []
    prompt_top1: list[int | None] = []
    for position, entry in enumerate(choice.get("prompt_logprobs") or []):
        if not entry:
            prompt_logprobs.append(None)
            prompt_top1.append(None)
            continue
        actual = entry.get(str(prompt_ids[position])) if position < len(prompt_ids) else None
        prompt_logprobs.append(float(actual["logprob"]) if actual else None)
        top = [int(token) for token, info in entry.items() if info.get("rank") == 1]
        prompt_top1.append(top[0] if top else None)
    return Completion(
        prompt_id,
        text=str(choice.get("text") or ""),
        token_ids=[int(t) for t in choice.get("token_ids") or []],
        logprobs=[None if v is None else float(v) for v in logprobs.get("token_logprobs") or []],
        prompt_token_ids=prompt_ids,
        prompt_logprobs=prompt_logprobs,
        prompt_top1=prompt_top1,
    )
