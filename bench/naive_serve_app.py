"""The service users write by hand, the baseline of bench/serve_throughput.py: FastAPI and
uvicorn calling `transformers.pipeline` once per request.

    CHECKPOINT=path THREADS=2 uvicorn naive_serve_app:app --port 8100
"""

from __future__ import annotations

import os

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
classifier = pipeline("text-classification", model=os.environ["CHECKPOINT"], device="cpu")
app = FastAPI()


class Body(BaseModel):
    text: str


@app.post("/predict")
def predict(body: Body) -> dict:
    result = classifier(body.text)[0]
    return {"label": result["label"], "score": result["score"]}
