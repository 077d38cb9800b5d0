"""The served classifier without Ray: batched predictions and token attributions for one
checkpoint folder (or a checkpoint in a bucket, fetched once). The Serve deployment wraps it;
tests use it directly."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import torch

from hpo.core.errors import UserError
from hpo.core.rundir import TRAINING_STATE
from hpo.core.storage import local_checkpoint
from hpo.trainables.costs import as_served, linear_kernels


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: dict[str, float]
    truncated: bool


@dataclass(frozen=True)
class Attribution:
    token: str
    score: float


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    tokens: list[Attribution]
    method: str
    convergence_delta: float


def checkpoint_folder(checkpoint: str) -> str:
    """The checkpoint on this machine, without the optimizer state that serving never reads."""
    return local_checkpoint(checkpoint, exclude=(TRAINING_STATE,))


class TextClassifier:
    """A `save_pretrained` classification checkpoint, ready for inference."""

    def __init__(
        self,
        checkpoint: str,
        *,
        device: str | None = None,
        threads: int | None = None,
        runtime: str = "torch",
    ):
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        checkpoint = checkpoint_folder(checkpoint)
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
        self.model.to(self.device).eval()
        # what explanations differentiate: int8 and packed layers have no gradients
        self.float_model = self.model
        if runtime == "int8" and self.device.type != "cpu":
            raise UserError("serve.runtime: int8 runs on CPUs only; use torch on GPUs")
        self.model = as_served(self.model, runtime)
        self.linear_kernels = linear_kernels(self.model)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        positions = getattr(config, "max_position_embeddings", 512)
        self.max_length = min(self.tokenizer.model_max_length or positions, positions)
        # One pass at a time: a request cancelled mid-pass (its client left) leaves its
        # thread running, and the next must not share the model and tokenizer with it.
        self._in_use = threading.Lock()

    def twin(self) -> TextClassifier:
        """An independent copy for another thread: its own model (Captum's hooks on the
        embeddings must not touch this one's forward passes) and its own tokenizer (a fast
        tokenizer refuses use from two threads at once)."""
        twin = copy.copy(self)
        twin.model = twin.float_model = copy.deepcopy(self.float_model)
        twin.tokenizer = copy.deepcopy(self.tokenizer)
        twin._in_use = threading.Lock()
        return twin

    def _encode(self, texts: list[str], pairs: list[str | None]):
        second = pairs if any(p is not None for p in pairs) else None
        if second is not None and any(p is None for p in second):
            raise ValueError("either every input has a text_pair or none has")
        encoded = self.tokenizer(
            texts,
            second,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
            return_length=False,
        )
        # only an input that fills max_length can have been cut: tokenize those again, whole
        lengths = encoded["attention_mask"].sum(dim=1).tolist()
        truncated = [False] * len(texts)
        for i, length in enumerate(lengths):
            if length >= self.max_length:
                whole = self.tokenizer(texts[i], second[i] if second else None)["input_ids"]
                truncated[i] = len(whole) > self.max_length
        return encoded.to(self.device), truncated

    def _prediction(self, probabilities: torch.Tensor, truncated: bool) -> Prediction:
        values = probabilities.tolist()
        best = int(probabilities.argmax())
        return Prediction(
            label=self.labels[best],
            score=values[best],
            probabilities=dict(zip(self.labels, values, strict=True)),
            truncated=truncated,
        )

    @torch.inference_mode()
    def predict(self, texts: list[str], pairs: list[str | None] | None = None) -> list[Prediction]:
        """One forward pass over all texts (and their pairs)."""
        with self._in_use:
            return self._predict(texts, pairs)

    def _predict(self, texts: list[str], pairs: list[str | None] | None) -> list[Prediction]:
        pairs = pairs if pairs is not None else [None] * len(texts)
        if not texts:
            return []
        # sentence pairs and single texts cannot share a forward pass
        singles = [i for i, p in enumerate(pairs) if p is None]
        doubles = [i for i, p in enumerate(pairs) if p is not None]
        results: list[Prediction | None] = [None] * len(texts)
        for group in (singles, doubles):
            if not group:
                continue
            encoded, truncated = self._encode([texts[i] for i in group], [pairs[i] for i in group])
            probabilities = self.model(**encoded).logits.float().softmax(-1).cpu()
            for row, index in enumerate(group):
                results[index] = self._prediction(probabilities[row], truncated[row])
        return results  # type: ignore[return-value]

    def explain(self, text: str, pair: str | None = None, *, steps: int = 32) -> Explanation:
        """Integrated Gradients (Captum) over the word embeddings, for the predicted label:
        how much each token moved that label's score, against an all-padding baseline."""
        with self._in_use:
            return self._explain(text, pair, steps)

    def _explain(self, text: str, pair: str | None, steps: int) -> Explanation:
        from captum.attr import LayerIntegratedGradients

        encoded, truncated = self._encode([text], [pair])
        input_ids = encoded["input_ids"]
        extra = {k: v for k, v in encoded.items() if k != "input_ids"}
        with torch.no_grad():
            probabilities = self.float_model(**encoded).logits.float().softmax(-1)[0].cpu()
        target = int(probabilities.argmax())

        special = torch.tensor(
            self.tokenizer.get_special_tokens_mask(
                input_ids[0].tolist(), already_has_special_tokens=True
            ),
            dtype=torch.bool,
            device=self.device,
        )
        pad = self.tokenizer.pad_token_id or 0
        baseline = torch.where(special, input_ids[0], torch.full_like(input_ids[0], pad))[None]

        def forward(ids: torch.Tensor) -> torch.Tensor:
            repeated = {k: v.expand(ids.shape[0], -1) for k, v in extra.items()}
            return self.float_model(input_ids=ids, **repeated).logits.float().softmax(-1)

        integrated = LayerIntegratedGradients(forward, self.float_model.get_input_embeddings())
        attributions, delta = integrated.attribute(
            input_ids,
            baselines=baseline,
            target=target,
            n_steps=steps,
            return_convergence_delta=True,
            internal_batch_size=steps,
        )
        scores = attributions.sum(-1)[0].detach().cpu()
        tokens = self.tokenizer.convert_ids_to_tokens(input_ids[0].tolist())
        return Explanation(
            prediction=self._prediction(probabilities, truncated[0]),
            tokens=[
                Attribution(token, float(score))
                for token, score, is_special in zip(tokens, scores, special.tolist(), strict=True)
                if not is_special
            ],
            method="integrated_gradients",
            convergence_delta=float(delta.abs().max()),
        )
