"""Load a checkpoint with transformers in this process and answer the canary's prompts.

Only for formats transformers implements. ModelOpt exports are refused before loading: transformers
logs "Unknown quantization type, got modelopt", skips the quantization and loads the codes without
their scales (finite garbage). After loading, the load report is the tell: any MISSING, UNEXPECTED
or mismatched key means a tensor was dropped or re-initialised at random, and the load fails.
torch and transformers are imported only here, and only when this engine is used.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from ptq_validators.canary.completion import Completion
from ptq_validators.canary.prompts import MAX_TOKENS, Prompt

#: Families transformers cannot load faithfully, and the engine to use instead.
REFUSED_FAMILIES = {
    "modelopt": "transformers does not implement ModelOpt exports (it logs 'Unknown quantization type, "
    "got modelopt' and loads the codes without their scales); serve it with vLLM "
    "(`ptqv canary --serve vllm`, which passes --quantization modelopt / modelopt_fp4) or TensorRT-LLM",
}
#: Log lines that mean transformers ignored the checkpoint's quantization.
UNKNOWN_QUANTIZATION = "Unknown quantization type"


class LoadRefused(Exception):
    """transformers cannot (or must not) be trusted with this checkpoint; ``message`` says why."""

    def __init__(self, message: str, kind: str = "incompatible") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind  # "incompatible" (fail) or "hardware" (not checkable here)


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unknown_quantization: str | None = None

    def problems(self) -> list[str]:
        found = [f"MISSING {k}" for k in self.missing] + [f"UNEXPECTED {k}" for k in self.unexpected]
        found += [f"MISMATCHED {k}" for k in self.mismatched]
        if self.unknown_quantization:
            found.insert(0, self.unknown_quantization)
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": self.mismatched,
            "unknown_quantization": self.unknown_quantization,
        }


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class TransformersEngine:
    """One loaded model. ``load`` raises LoadRefused; ``complete`` never raises for bad numbers."""

    checkpoint: str
    model: Any = None
    tokenizer: Any = None
    report: LoadReport = field(default_factory=LoadReport)

    @staticmethod
    def version() -> str:
        import transformers

        return str(transformers.__version__)

    def load(self, family: str) -> None:
        if family in REFUSED_FAMILIES:
            raise LoadRefused(REFUSED_FAMILIES[family])
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise LoadRefused(f"transformers is not installed here ({exc})", kind="hardware") from None
        collect = _Collect()
        logger = logging.getLogger("transformers")
        logger.addHandler(collect)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # load-time advice; the load report is what counts
                loaded: Any = AutoModelForCausalLM.from_pretrained(
                    self.checkpoint, dtype=torch.bfloat16, output_loading_info=True
                )
                model, info = loaded
                self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        except ImportError as exc:  # a quantizer's package (compressed-tensors, gptqmodel, optimum …)
            raise LoadRefused(
                f"transformers needs a package that is not installed: {exc}", kind="hardware"
            ) from None
        except (ValueError, RuntimeError, OSError) as exc:
            raise LoadRefused(
                f"transformers could not load {self.checkpoint}: {str(exc).splitlines()[0][:300]}"
            ) from None
        finally:
            logger.removeHandler(collect)
        unknown = next((ln.split(" - ")[0] for ln in collect.lines if UNKNOWN_QUANTIZATION in ln), None)
        self.report = LoadReport(
            sorted(info.get("missing_keys") or []),
            sorted(info.get("unexpected_keys") or []),
            sorted(str(k) for k in info.get("mismatched_keys") or []),
            unknown,
        )
        # The first GPU when there is one (untested here: this machine has none), else the CPU.
        self.model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()

    def complete(self, prompt: Prompt) -> Completion:
        """Teacher-forced prompt log-probabilities, then MAX_TOKENS greedy tokens."""
        import torch

        device = self.model.device
        ids = self.tokenizer(prompt.text, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            output = self.model(ids, use_cache=True)
            rows = torch.log_softmax(output.logits[0].float(), dim=-1)
            targets = ids[0, 1:]
            prompt_logprobs = [None, *rows[:-1].gather(-1, targets[:, None])[:, 0].tolist()]
            prompt_top1 = [None, *rows[:-1].argmax(-1).tolist()]
            past, last = output.past_key_values, rows[-1]
            generated: list[int] = []
            logprobs: list[float | None] = []
            for _ in range(MAX_TOKENS):
                token = int(last.argmax())
                generated.append(token)
                logprobs.append(float(last[token]))
                step = self.model(
                    torch.tensor([[token]], device=device), past_key_values=past, use_cache=True
                )
                past, last = step.past_key_values, torch.log_softmax(step.logits[0, -1].float(), dim=-1)
        return Completion(
            prompt.id,
            text=self.tokenizer.decode(generated, skip_special_tokens=True),
            token_ids=generated,
            logprobs=logprobs,
            prompt_token_ids=ids[0].tolist(),
            prompt_logprobs=prompt_logprobs,
            prompt_top1=prompt_top1,
            distributions=rows[:-1].cpu(),
        )
