"""Timing tools, each run as a module that prints figures and ends with one JSON line:
``train_step`` (the jitted train step or encoder forward, any backend) and ``fewshot`` (the
few-shot sweep on synthetic embeddings)."""
