"""Cx knowledge assistant: cited answers over a consultancy's documents, fully offline."""

import os

# Set before any dependency is imported: these stop Hugging Face, Gradio and Chroma from
# reaching for the network (see shared OFFLINE.md). setdefault lets a user override them.
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    # torch's OpenMP workers spin while waiting by default; when the other core is busy (a
    # second request, an ingest, any other process) a 2-thread query encode then took 330 ms
    # instead of 20 ms here. Passive waiting costs nothing measurable when the machine is idle.
    "OMP_WAIT_POLICY": "PASSIVE",
    # numpy's OpenBLAS keeps its own worker threads spinning after each product; they then
    # fight torch's OpenMP threads for the 2 cores, and a search (one small matrix-vector
    # product next to one query encode) took 35 ms p50 / 127 ms p95 instead of 13 / 19 ms.
    # Our products are small enough that one BLAS thread loses nothing.
    "OPENBLAS_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_key, _value)

__version__ = "0.1.0"
